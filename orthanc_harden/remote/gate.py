# Remote program body: a health gate run on the host itself when the control node cannot reach Orthanc's port.
# Standard input: {"url", "user", "password", "timeout"}, or {"url", "timeout", "answer_only": true} to wait until
# Orthanc answers at all. Prints {"ok": bool, "detail": "..."} without secrets.

import base64
import sys
import time
import urllib.error
import urllib.request


# Never the environment's proxy: it would see the password in clear and answer for an Orthanc it cannot reach.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def status(url, auth=None):
    request = urllib.request.Request(url + "/system")
    if auth:
        token = base64.b64encode(("%s:%s" % auth).encode("utf-8")).decode("ascii")
        request.add_header("Authorization", "Basic " + token)
    try:
        with DIRECT.open(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except (urllib.error.URLError, OSError):
        return None


def main():
    request = json.loads(sys.stdin.read())
    deadline = time.time() + float(request.get("timeout", 60))
    detail = "Orthanc did not answer"
    while time.time() < deadline:
        anonymous = status(request["url"])
        if anonymous is not None and request.get("answer_only"):
            print(json.dumps({"ok": True, "detail": "answering (%s)" % anonymous}))
            return
        if anonymous is not None:
            user = status(request["url"], (request["user"], request["password"]))
            if anonymous == 401 and user == 200:
                print(json.dumps({"ok": True, "detail": "anonymous 401, user %s 200" % request["user"]}))
                return
            detail = "anonymous GET /system answered %s (expected 401), user %s answered %s (expected 200)" % (
                anonymous, request["user"], user)
        time.sleep(1)
    print(json.dumps({"ok": False, "detail": detail}))


if __name__ == "__main__":
    main()
