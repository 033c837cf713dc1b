"""WebRTC signalling edge: bad offers get a JSON 400 and the server goes on."""

from __future__ import annotations

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from bot.config import load_settings
from bot.server import create_app
from tests.provisioned import provisioned_var


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def client(tmp_path_factory):
    app = create_app(load_settings(var_dir=provisioned_var(tmp_path_factory.mktemp("signalling"))), voice=False)
    async with TestClient(TestServer(app)) as c:
        yield c


@pytest.mark.parametrize("body", [
    b"{not json",
    b"\xff\xfe\x00",
    b'{"type": "offer"}',
    b'{"sdp": 42, "type": "offer"}',
    b'{"sdp": "v=0", "type": "answer"}',
    b'["sdp"]',
    b'{"sdp": "this is not an SDP", "type": "offer"}',
])
async def test_bad_offers_are_refused_with_a_json_error(client, body):
    response = await client.post("/api/offer", data=body)
    assert response.status == 400
    assert "error" in await response.json()
    health = await client.get("/health")
    assert health.status == 200


async def test_caller_page_is_served_in_french(client):
    response = await client.get("/")
    assert response.status == 200
    html = await response.text()
    assert 'lang="fr"' in html and "conseiller" in html and "Appeler" in html
