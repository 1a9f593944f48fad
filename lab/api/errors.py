"""The App Mesh API's errors, as the lab's own exception types.

    ApiError                      any error the API answers with (InternalServerErrorException, 500)
     ├── BadRequest               BadRequestException     400  malformed or invalid request, rejected apply
     ├── NotFound                 NotFoundException       404  no such mesh / resource / parent
     ├── Conflict                 ConflictException       409  create of an existing name; clientToken reuse
     ├── ResourceInUse            ResourceInUseException  409  delete of a resource others depend on
     ├── LimitExceeded            LimitExceededException  400  a service quota (see quotas.py)
     ├── TooManyTags              TooManyTagsException    400  more than 50 tags on a resource
     ├── UnrecognizedClient       UnrecognizedClientException 403  no signature, or a key the lab did not issue
     └── InvalidSignature         InvalidSignatureException   403  a signature that does not verify (sigv4.py)

Every handler raises these; `error_response` is the one place that turns one into an HTTP answer.
The HTTP status comes from the error shape in the botocore service model (`error.httpStatusCode`)
(the two authentication errors are AWS-wide, not in App Mesh's model: they carry their own 403),
and the wire format is what botocore's rest-json parser reads: the `x-amzn-ErrorType` header names
the error shape, the JSON body carries `message`. So boto3 raises `client.exceptions.<Name>`.
"""
from __future__ import annotations

import uuid


class ApiError(Exception):
    """An error the API reports to its client; `code` is the error shape's name in the model."""

    code = "InternalServerErrorException"
    status: int | None = None  # None: the status the service model gives the error shape

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadRequest(ApiError):
    code = "BadRequestException"


class NotFound(ApiError):
    code = "NotFoundException"


class Conflict(ApiError):
    code = "ConflictException"


class ResourceInUse(ApiError):
    code = "ResourceInUseException"


class LimitExceeded(ApiError):
    code = "LimitExceededException"


class TooManyTags(ApiError):
    code = "TooManyTagsException"


class UnrecognizedClient(ApiError):
    code = "UnrecognizedClientException"
    status = 403


class InvalidSignature(ApiError):
    code = "InvalidSignatureException"
    status = 403


def error_response(exc: ApiError, shapes: dict) -> tuple[int, dict, dict]:
    """(status, body, headers) for an error, with the status the service model gives its shape."""
    status = exc.status or (shapes.get(exc.code) or {}).get("error", {}).get("httpStatusCode", 500)
    return status, {"message": exc.message}, {"x-amzn-ErrorType": exc.code, "x-amzn-RequestId": str(uuid.uuid4())}
