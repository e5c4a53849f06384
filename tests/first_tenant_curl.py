"""A stand-in for curl, for tests/test_first_tenant.py where curl is not installed.

It replays what the README's walkthrough asks of curl with urllib: -s/--silent,
-S/--show-error, -X/--request METHOD, -H/--header 'Name: value' (repeatable),
-d/--data BODY (a POST unless -X says otherwise), -w/--write-out FORMAT (`\\n` and
`%{http_code}`), and one URL. Like curl without --fail, it prints the body of any HTTP
status and exits 0; it exits 7 when it cannot connect, and 2 for an option it does not
know. The test writes this file, with a #! line, as `curl` on PATH.
"""

import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    method, headers, data, write_out, url = None, {}, None, "", None
    args = iter(argv)
    for arg in args:
        if arg in ("-s", "--silent", "-S", "--show-error", "-sS", "-Ss"):
            continue
        if arg in ("-X", "--request"):
            method = next(args)
        elif arg in ("-H", "--header"):
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif arg in ("-d", "--data"):
            data = next(args).encode()
        elif arg in ("-w", "--write-out"):
            write_out = next(args)
        elif arg.startswith("-"):
            print(f"curl (stand-in): option {arg} is not supported", file=sys.stderr)
            return 2
        else:
            url = arg
    if url is None:
        print("curl (stand-in): no URL given", file=sys.stderr)
        return 2
    if data is not None:
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as reply:
            status, body = reply.status, reply.read()
    except urllib.error.HTTPError as error:
        with error:
            status, body = error.code, error.read()
    except OSError as error:
        print(f"curl (stand-in): cannot connect to {url}: {error}", file=sys.stderr)
        return 7
    sys.stdout.buffer.write(body)
    sys.stdout.write(write_out.replace("\\n", "\n").replace("%{http_code}", str(status)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
