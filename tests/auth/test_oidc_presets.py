"""Presets: URLs/claims filled in; GitHub flow against a small GitHub API stand-in.

GitHub itself cannot run on 127.0.0.1, so a Tornado app answers the four endpoints the preset
uses, with GitHub's documented shapes. The hub side (handlers, cookie, token exchange) is real.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import httpx
import pytest
from auth_web_helpers import serve_hub
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

from amalthea.auth.oidc_presets import (
    AzureADAuthenticator,
    GitHubAuthenticator,
    GitLabAuthenticator,
    GoogleAuthenticator,
    KeycloakAuthenticator,
)
from amalthea.plugins import AUTHENTICATORS, load


def test_presets_fill_urls_and_claims():
    assert load(AUTHENTICATORS, "github") is GitHubAuthenticator
    assert (
        AzureADAuthenticator(tenant_id="t1").issuer == "https://login.microsoftonline.com/t1/v2.0"
    )
    kc = KeycloakAuthenticator(keycloak_url="https://sso.example.org/", realm="lab")
    assert kc.issuer == "https://sso.example.org/realms/lab"
    assert GitLabAuthenticator().username_claim == "nickname"
    google = GoogleAuthenticator(hosted_domain="example.edu")
    assert google.username_claim == "email" and google.extra_authorize_params == {
        "hd": "example.edu"
    }
    gh = GitHubAuthenticator(github_url="https://ghe.example.org")
    assert gh.authorize_url == "https://ghe.example.org/login/oauth/authorize"
    assert not gh.uses_id_token


class FakeGitHub(RequestHandler):
    def get(self, path: str) -> None:
        if path == "login/oauth/authorize":
            q = {"code": "gh-code", "state": self.get_argument("state")}
            self.redirect(self.get_argument("redirect_uri") + "?" + urlencode(q))
            return
        if self.request.headers.get("Authorization") != "Bearer gh-token":
            self.set_status(401)
            self.finish({"message": "Bad credentials"})
            return
        answers = {
            "user": {"login": "Octo-Cat", "id": 1, "email": "octo@example.org"},
            "user/orgs": [{"login": "jupyter-lab"}, {"login": "other"}],
            "user/teams": [{"slug": "core", "organization": {"login": "jupyter-lab"}}],
        }
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(answers[path]))

    def post(self, path: str) -> None:
        assert path == "login/oauth/access_token"
        ok = self.get_argument("code") == "gh-code" and self.get_argument("client_secret") == "s"
        self.finish(
            {"access_token": "gh-token", "token_type": "bearer", "scope": "read:org"}
            if ok
            else {"error": "bad_verification_code"}
        )


@pytest.fixture
async def github():
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(Application([(r"/(.*)", FakeGitHub)]))
    server.add_sockets(sockets)
    yield f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    server.stop()


@pytest.mark.parametrize(
    ("allowed", "status"), [({"jupyter-lab:core"}, 200), ({"jupyter-lab"}, 200), ({"nope"}, 403)]
)
async def test_github_flow_orgs_and_teams(github, allowed, status):
    auth = GitHubAuthenticator(
        github_url=github,
        github_api=github,
        client_id="c",
        client_secret="s",
        allowed_organizations=allowed,
    )
    async with (
        serve_hub(auth) as hub,
        httpx.AsyncClient(follow_redirects=True, timeout=20) as client,
    ):
        r = await client.get(f"{hub}/hub/oauth_login")
    assert r.status_code == status, r.text
    if status == 200:
        result = r.json()["result"]
        assert result["name"] == "octo-cat"
        assert result["groups"] == ["jupyter-lab", "jupyter-lab:core", "other"]
        assert result["auth_state"]["access_token"] == "gh-token"
