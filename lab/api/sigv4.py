"""SigV4: every App Mesh API request must be signed with the lab's credentials (credentials.py).

`verify` checks a request as AWS does and returns the region of its credential scope:

  - an `Authorization: AWS4-HMAC-SHA256 Credential=<key>/<yyyymmdd>/<region>/appmesh/aws4_request,
    SignedHeaders=…, Signature=…` header; none, or a key the lab did not issue, or a session token
    (the lab's credentials have none) → 403 UnrecognizedClientException;
  - a scope for another service, a malformed scope or header, an `X-Amz-Date` more than 15 minutes
    from the daemon's clock (a replay, or a client whose clock is off), a scope date that is not
    that day, signed headers missing from the request, an `X-Amz-Content-SHA256` that is not the
    body's hash, or a signature that does not match → 403 InvalidSignatureException.

The signature is recomputed by botocore's own signer (`botocore.auth.SigV4Auth`, the code that
signs boto3's and the aws CLI's requests) over the request rebuilt from what arrived: the method,
the path as sent, the query string canonicalized, exactly the headers the client says it signed,
the body, and the request's own X-Amz-Date as the signing time. So the lab and its clients can
never disagree on canonicalization (double-encoded paths, sorted query, header folding), and the
lab carries no hand-written HMAC chain to get wrong. The two signatures are compared with
hmac.compare_digest. Presigned URLs (X-Amz-Signature in the query) are not accepted.

`sign` is the client side for code that sends raw HTTP (the reliability bench, tests): the same
botocore signer, with the lab's profile.
"""
from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import time
from urllib.parse import quote, urlsplit

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from .errors import InvalidSignature, UnrecognizedClient

SERVICE = "appmesh"
MAX_SKEW_S = 15 * 60  # AWS refuses a signature whose X-Amz-Date is more than 15 minutes off
_ALGORITHM = "AWS4-HMAC-SHA256"
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_REGION = re.compile(r"[a-z0-9-]{1,32}")
_HOW = ("sign requests with the lab's credentials: the profile appmesh-lab in the files `appmesh-lab status` "
        "names (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE)")


def _fields(auth: str) -> dict:
    out = {}
    for part in auth[len(_ALGORITHM):].split(","):
        key, sep, value = part.strip().partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _epoch(amz_date: str) -> float:
    return float(calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ")))


def canonical_query(query) -> str:
    """The query string as SigV4 signs it. From the raw query string (as sent): its key=value pairs
    sorted, as botocore canonicalizes what it sends; from a parsed {key: [values]}: each key and
    value percent-encoded (unreserved characters kept), sorted."""
    if isinstance(query, str):
        pairs = sorted(tuple(p.partition("=")[::2]) for p in query.split("&") if p) if query else []
    else:
        pairs = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, vs in (query or {}).items() for v in vs)
    return "&".join(f"{k}={v}" for k, v in pairs)


def verify(method: str, path: str, query, body: bytes, headers: dict, keys: dict, now: float | None = None) -> str:
    """Check a request's SigV4 signature against `keys` ({access key id: secret}); return its
    region, or raise UnrecognizedClient / InvalidSignature. `query` is the raw query string (best:
    canonicalized exactly as botocore does) or the parsed {key: [values]}."""
    h = {k.lower(): v for k, v in (headers or {}).items()}
    auth = h.get("authorization") or ""
    if not auth:
        raise UnrecognizedClient(f"The request carries no Authorization header: {_HOW}")
    if not auth.startswith(_ALGORITHM + " "):
        raise UnrecognizedClient(f"The Authorization header is not {_ALGORITHM}: {_HOW}")
    f = _fields(auth)
    scope = (f.get("Credential") or "").split("/")
    key = scope[0]
    if not key or key not in keys:
        raise UnrecognizedClient(f"The security token included in the request is invalid: access key "
                                 f"{key[:24]!r} is not the lab's; {_HOW}")
    if "x-amz-security-token" in h:
        raise UnrecognizedClient("The security token included in the request is invalid: the lab's credentials have "
                                 f"no session token; {_HOW}")
    if len(scope) != 5 or scope[4] != "aws4_request" or not _REGION.fullmatch(scope[2]) or not f.get("Signature") \
            or not f.get("SignedHeaders"):
        raise InvalidSignature("Authorization header requires Credential=<key>/<date>/<region>/appmesh/aws4_request, "
                               "SignedHeaders and Signature")
    if scope[3] != SERVICE:
        raise InvalidSignature(f"Credential should be scoped to correct service: '{SERVICE}' (not {scope[3][:32]!r})")
    amz_date = h.get("x-amz-date") or ""
    if not _AMZ_DATE.fullmatch(amz_date):
        raise InvalidSignature("The request must carry an X-Amz-Date header (yyyymmddThhmmssZ) and sign it")
    if scope[1] != amz_date[:8]:
        raise InvalidSignature(f"Credential should be scoped to a valid date: {scope[1][:16]!r} is not the day of "
                               f"X-Amz-Date {amz_date}")
    try:
        signed_at = _epoch(amz_date)
    except ValueError:
        raise InvalidSignature(f"X-Amz-Date {amz_date} is not a date") from None
    now = time.time() if now is None else now
    if abs(now - signed_at) > MAX_SKEW_S:
        stamp = time.strftime(SIGV4_TIMESTAMP, time.gmtime(now))
        raise InvalidSignature(f"Signature expired: {amz_date} is more than 15 minutes from the lab's clock ({stamp}); "
                               "sign the request again (a replayed request is refused)")
    names = f["SignedHeaders"].split(";")
    for needed in ("host", "x-amz-date"):
        if needed not in names:
            raise InvalidSignature(f"SignedHeaders must include {needed}")
    missing = [n for n in names if n not in h]
    if missing:
        raise InvalidSignature(f"Signed header(s) {', '.join(missing)[:100]} are not in the request")
    body = body or b""
    declared = h.get("x-amz-content-sha256")
    if declared is not None and declared != hashlib.sha256(body).hexdigest():
        raise InvalidSignature("X-Amz-Content-SHA256 is not the SHA-256 of the request body (the lab signs every "
                               "payload)")
    signed = {n: h[n] for n in names}
    cq = canonical_query(query)
    request = AWSRequest(method=method, url=f"http://{h['host']}{path}" + (f"?{cq}" if cq else ""), data=body,
                         headers=signed)
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(key, keys[key]), SERVICE, scope[2])
    try:
        if sorted(signer.headers_to_sign(request)) != sorted(names):
            raise InvalidSignature("SignedHeaders names a header SigV4 never signs")
        expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    except (ValueError, UnicodeError) as exc:
        raise InvalidSignature(f"The request cannot be canonicalized for SigV4: {exc}") from None
    if not hmac.compare_digest(expected.encode(), f["Signature"].encode("utf-8", "replace")):
        raise InvalidSignature("The request signature we calculated does not match the signature you provided. "
                               f"Check your AWS Secret Access Key and signing method; {_HOW}")
    return scope[2]


def sign(key_id: str, secret: str, region: str, method: str, url: str, body: bytes = b"",
         headers: dict | None = None, when: float | None = None) -> dict:
    """The headers of a request signed for the App Mesh API (botocore's signer), at `when` (epoch
    seconds; default now). `url` is the full URL as it will be sent; the answer includes its Host."""
    request = AWSRequest(method=method, url=url, data=body or b"", headers=dict(headers or {}))
    signer = SigV4Auth(Credentials(key_id, secret), SERVICE, region)
    if when is None:
        signer.add_auth(request)
    else:  # the same steps as add_auth, at a chosen time (tests of replays and clock skew)
        stamp = time.strftime(SIGV4_TIMESTAMP, time.gmtime(when))
        request.context["timestamp"] = stamp
        request.headers["X-Amz-Date"] = stamp
        signature = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
        request.headers["Authorization"] = (
            f"{_ALGORITHM} Credential={key_id}/{stamp[:8]}/{region}/{SERVICE}/aws4_request, "
            f"SignedHeaders={signer.signed_headers(signer.headers_to_sign(request))}, Signature={signature}")
    return {"Host": urlsplit(url).netloc, **dict(request.headers.items())}
