"""QA: pages about a user who does not exist answer 404, even for an admin (who may see
every user's servers, so the permission check alone lets the request through)."""

from __future__ import annotations

from amalthea.testing.session import HubSession


def test_unknown_user_is_404_for_admin(amalthea_hub):
    hub = amalthea_hub
    with HubSession(hub.url) as s:
        assert s.login(hub.admin_name).status_code == 302
        for path in ("/hub/user/nosuch/", "/hub/user/nosuch/lab", "/hub/user/nosuch/api/status",
                     "/hub/spawn-pending/nosuch", "/hub/spawn-pending/nosuch/named"):  # fmt: skip
            r = s.client.get(path)
            assert r.status_code == 404, (path, r.status_code)
        # a user who exists but has no server still gets the "not running" answer
        assert s.client.get(f"/hub/user/{hub.admin_name}/").status_code == 424
        assert s.client.get(f"/hub/spawn-pending/{hub.admin_name}").status_code == 200
