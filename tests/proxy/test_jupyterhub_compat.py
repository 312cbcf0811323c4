"""JupyterHub's own ConfigurableHTTPProxy class starts and drives amalthea-proxy.

JupyterHub is not a dependency: the fixture installs it without its dependencies into a
temporary directory (they are the hub's, mostly present already) and skips if that fails.
"""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import httpx
import pytest
from proxy_helpers import Upstream, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def jupyterhub_proxy(tmp_path_factory):
    target = tmp_path_factory.mktemp("jupyterhub")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            "jupyterhub",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot install jupyterhub: {r.stderr[-500:]}")
    sys.path.insert(0, str(target))
    try:
        from jupyterhub.proxy import ConfigurableHTTPProxy
    except ImportError as e:
        pytest.skip(f"jupyterhub.proxy does not import here: {e}")
    yield ConfigurableHTTPProxy
    sys.path.remove(str(target))


async def test_configurable_http_proxy_drives_amalthea(
    jupyterhub_proxy, upstream: Upstream, tmp_path
) -> None:
    hub = Upstream()  # stands in for the hub: serves /hub/error/<code> and the "/" route
    port, api_port = free_port(), free_port()
    proxy = jupyterhub_proxy(
        auth_token="jh-token",
        public_url=f"http://127.0.0.1:{port}/",
        api_url=f"http://127.0.0.1:{api_port}",
        command=[sys.executable, "-m", "amalthea.proxy"],
        pid_file=str(tmp_path / "proxy.pid"),
        app=SimpleNamespace(subdomain_host="", internal_ssl=False),
        hub=SimpleNamespace(url=hub.url + "/hub/", routespec="/", host=hub.url),
        check_running_interval=3600,
    )
    await proxy.start()
    try:
        await proxy.add_route("/", hub.url, {"hub": True})
        await proxy.add_route("/user/alice/", upstream.url, {"user": "alice", "server_name": ""})
        await proxy.add_route("/user/a b/", upstream.url, {"user": "a b", "server_name": ""})
        routes = await proxy.get_all_routes()
        assert set(routes) == {"/", "/user/alice/", "/user/a%20b/"}
        alice = routes["/user/alice/"]
        assert alice["target"] == upstream.url
        assert alice["data"]["user"] == "alice" and "last_activity" in alice["data"]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as web:
            r = await web.get("/user/alice/lab")
            assert r.status_code == 200 and r.json()["port"] == upstream.port
            r = await web.get("/hub/login")
            assert r.json()["port"] == hub.port
            # JupyterHub starts the proxy with --error-target <hub>/hub/error
            await proxy.add_route("/user/gone/", f"http://127.0.0.1:{free_port()}", {})
            r = await web.get("/user/gone/tree")
            assert r.status_code == 503
            assert r.json()["uri"].startswith("/hub/error/503?url=%2Fuser%2Fgone%2Ftree")
        await proxy.delete_route("/user/alice/")
        await proxy.delete_route("/user/alice/")  # 404 is tolerated by JupyterHub
        assert "/user/alice/" not in await proxy.get_all_routes()
    finally:
        proxy.stop()
        proxy.proxy_process.wait(10)
        await hub.close()
