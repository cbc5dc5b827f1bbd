from tests.conftest import png_bytes


def test_register_and_fetch(client, make_user):
    alice = make_user("Alice")
    response = alice.register(png_bytes(1), title="Sunrise")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["log_index"] == 0
    evidence = client.get(f"/api/v1/works/{body['work_id']}/evidence").json()
    assert evidence["statement"]["sha256"] == body["sha256"]
    verify = client.get(f"/api/v1/verify/{body['work_id']}").json()
    assert verify["valid"], verify
