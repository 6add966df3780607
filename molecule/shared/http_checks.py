"""The HTTP checks every scenario's verify makes, from the control node; imported by each tests module so pytest
collects them there (fixtures `orthanc` and `store_user` from molecule/conftest.py)."""


def test_anonymous_request_is_refused(orthanc):
    response = orthanc.get("/system")
    assert response.status_code == 401
    assert response.headers.get("WWW-Authenticate", "").startswith("Basic realm=")


def test_store_user_is_accepted_and_a_wrong_password_refused(orthanc, store_user):
    name, password = store_user
    assert orthanc.get("/system", auth=(name, password)).status_code == 200
    assert orthanc.get("/system", auth=(name, password + "x")).status_code == 401
