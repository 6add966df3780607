# Remote program body: a health gate run on the host itself when the control node cannot reach Orthanc's port.
# Standard input: {"url", "user", "password", "timeout", "ca"}, or {"url", "timeout", "answer_only": true, "ca"} to
# wait until Orthanc answers at all. "ca": for an https:// url, the certificate file Orthanc serves (SslCertificate),
# trusted alone. Prints {"ok": bool, "detail": "..."} without secrets.

import base64
import ssl
import sys
import time
import urllib.error
import urllib.request

DIRECT = None


def opener(ca):
    """Never the environment's proxy: it would see the password in clear and answer for an Orthanc it cannot
    reach. Over https, the Orthanc's own certificate is the only trust anchor; the name is not checked, since the
    gate asks 127.0.0.1 for the certificate Orthanc was configured with."""
    handlers = [urllib.request.ProxyHandler({})]
    if ca:
        context = ssl.create_default_context(cafile=ca)
        context.check_hostname = False
        handlers.append(urllib.request.HTTPSHandler(context=context))
    return urllib.request.build_opener(*handlers)


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
    global DIRECT
    request = json.loads(sys.stdin.read())
    DIRECT = opener(request.get("ca"))
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
