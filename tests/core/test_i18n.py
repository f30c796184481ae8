"""English and Simplified Chinese: chosen from Accept-Language, overridden by ?lang= (and
remembered in a cookie), then by the user's own preference."""

from __future__ import annotations

import pytest

from astrocloud.core.i18n import from_accept_language, normalise


@pytest.mark.parametrize(("header", "expected"), [
    ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
    ("en-US,en;q=0.9", "en"),
    ("fr-FR, zh;q=0.5, en;q=0.4", "zh-CN"),
    ("de, fr", None),
    ("zh-Hans-CN", "zh-CN"),
    ("en;q=0.1, zh;q=0.9", "zh-CN"),
    ("*;q=0.5, garbage;;q=x", None),
    ("", None),
])
def test_accept_language_is_negotiated(header, expected):
    assert from_accept_language(header) == expected


def test_language_tags_are_normalised():
    assert normalise("zh_CN") == "zh-CN" and normalise("ZH") == "zh-CN"
    assert normalise("en-GB") == "en" and normalise("klingon") is None


def test_a_browser_asking_for_chinese_gets_chinese(client):
    page = client.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9", "Accept": "text/html"})
    assert '<html lang="zh-CN">' in page.text
    assert "天文" in page.text or "观测" in page.text


def test_lang_parameter_overrides_and_is_remembered(client):
    page = client.get("/?lang=zh-CN", headers={"Accept-Language": "en"})
    assert '<html lang="zh-CN">' in page.text
    assert client.cookies.get("astrocloud_lang") == "zh-CN"
    again = client.get("/", headers={"Accept-Language": "en"})
    assert '<html lang="zh-CN">' in again.text
    back = client.get("/?lang=en")
    assert '<html lang="en">' in back.text


def test_problem_details_follow_the_language(client):
    english = client.get("/api/v1/me").json()
    chinese = client.get("/api/v1/me", headers={"Accept-Language": "zh-CN"}).json()
    assert english["title"] == "Sign-in required"
    assert chinese["title"] != english["title"]


def test_a_users_saved_language_applies_when_nothing_else_is_chosen(users):
    api = users.api("astronomer", "lyra")
    assert api.patch("/api/v1/me", json={"language": "zh-CN"}).status_code == 200
    page = api.get("/dashboard", headers={"Accept": "text/html"})
    assert '<html lang="zh-CN">' in page.text


def test_the_page_offers_a_visible_language_switch(client):
    page = client.get("/", headers={"Accept": "text/html"})
    assert 'href="?lang=zh-CN"' in page.text and "简体中文" in page.text


def test_a_single_validation_message_is_shown_in_the_readers_language(users):
    api = users.api("astronomer", "lyra")
    group = api.post("/api/v1/groups", json={"name": "g1", "title": "G"}).json()
    response = api.post(f"/api/v1/groups/{group['id']}/members",
                        json={"username": "nobody-here"}, headers={"Accept-Language": "zh-CN"})
    assert response.status_code == 422
    body = response.json()
    assert "不存在名为“nobody-here”的用户" in body["detail"]
    assert body["errors"][0]["field"] == "username"
    assert "不存在" in body["errors"][0]["message"]
