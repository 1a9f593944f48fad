"""Kubernetes' own limits on metadata, as its API server enforces them (apimachinery's
validation: IsQualifiedName, IsValidLabelValue, ValidateAnnotations, IsDNS1035Label), so a
manifest the lab accepts is one a cluster would accept too, and no label or annotation can carry
megabytes or control characters into the store and onto a terminal.

Each check returns None when the value is fine, else (message, hint).
"""
from __future__ import annotations

import re

LABEL_VALUE_MAX = 63
NAME_PART_MAX = 63  # the name part of a label or annotation key
PREFIX_MAX = 253  # the DNS-subdomain prefix of a key (example.com/...)
ANNOTATIONS_TOTAL_MAX = 256 * 1024  # bytes, keys and values together, per object
DNS1035_MAX = 63

_NAME_PART = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _shown(value: str, limit: int = 50) -> str:
    return repr(value if len(value) <= limit else value[:limit - 3] + "...")


def _fixed_part(value: str, limit: int) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", value).strip("-_.")[:limit].strip("-_.") or "x"


def qualified_name(key) -> tuple[str, str] | None:
    """A label or annotation key: [prefix/]name, prefix a DNS subdomain of up to 253 characters,
    name up to 63 characters of letters, digits, '-', '_' and '.', starting and ending with a
    letter or digit."""
    if not isinstance(key, str) or not key:
        return "a key must be a non-empty string", "write a key such as app or example.com/team"
    prefix, slash, name = key.rpartition("/")
    if slash and ("/" in prefix or not prefix):
        return f"key {_shown(key)} has more than one '/' or an empty prefix", \
            "write [prefix/]name, e.g. example.com/team"
    if slash and (len(prefix) > PREFIX_MAX or not _DNS_SUBDOMAIN.match(prefix)):
        return f"the prefix of key {_shown(key)} is not a DNS subdomain (lower-case letters, digits, '-' and '.'; " \
               f"at most {PREFIX_MAX} characters)", "write a prefix such as example.com"
    if not name or len(name) > NAME_PART_MAX or not _NAME_PART.match(name):
        return f"key {_shown(key)} is not a valid name (at most {NAME_PART_MAX} characters: letters, digits, " \
               "'-', '_' and '.', starting and ending with a letter or digit)", \
            f"for example {_fixed_part(name, NAME_PART_MAX)!r}"
    return None


def label_value(value) -> tuple[str, str] | None:
    """A label value: empty, or up to 63 characters of letters, digits, '-', '_' and '.', starting
    and ending with a letter or digit."""
    if not isinstance(value, str):
        return None  # reported as a type problem
    if value == "" or (len(value) <= LABEL_VALUE_MAX and _NAME_PART.match(value)):
        return None
    if len(value) > LABEL_VALUE_MAX:
        return f"label value is {len(value)} characters long; at most {LABEL_VALUE_MAX} are allowed", \
            "shorten it (put longer text in an annotation)"
    return f"label value {_shown(value)} may hold only letters, digits, '-', '_' and '.', and must start and end " \
           "with a letter or digit", f"for example {_fixed_part(value, LABEL_VALUE_MAX)!r}"


def annotations_size(annotations: dict) -> int:
    return sum(len(str(k).encode("utf-8", "surrogatepass")) + len(v.encode("utf-8", "surrogatepass"))
               for k, v in annotations.items() if isinstance(v, str))


def dns1035_label(value: str, what: str) -> tuple[str, str] | None:
    """A Service name: a DNS-1035 label (starts with a letter), up to 63 characters."""
    if len(value) <= DNS1035_MAX and _DNS1035.match(value):
        return None
    fixed = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")
    fixed = (fixed if fixed[:1].isalpha() else "svc-" + fixed)[:DNS1035_MAX].rstrip("-")
    return f"{what} {_shown(value)} is not a DNS-1035 label (lower-case letters, digits and '-', starting with a " \
           f"letter; at most {DNS1035_MAX} characters)", f"for example {fixed!r}"


IANA_SVC_NAME_MAX = 15
_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def iana_svc_name(value: str, what: str) -> tuple[str, str] | None:
    """A container port's name, and a targetPort given by name: up to 15 lower-case letters,
    digits and '-', with a letter, no '--', not starting or ending with '-'."""
    if len(value) <= IANA_SVC_NAME_MAX and _IANA_SVC_NAME.match(value) and "--" not in value \
            and any(c.isalpha() for c in value):
        return None
    fixed = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]+", "-", value.lower())).strip("-")[:IANA_SVC_NAME_MAX].strip("-")
    if not any(c.isalpha() for c in fixed):
        fixed = ("p-" + fixed)[:IANA_SVC_NAME_MAX].strip("-")
    return f"{what} {_shown(value)} is not a valid port name (at most {IANA_SVC_NAME_MAX} lower-case letters, " \
           "digits and '-', with at least one letter, no '--')", f"for example {fixed!r}"


def dns_label(value: str, what: str) -> tuple[str, str] | None:
    """A DNS-1123 label: up to 63 lower-case letters, digits and '-', not starting or ending with '-'."""
    if len(value) <= 63 and _DNS_LABEL.match(value):
        return None
    fixed = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")[:63].strip("-") or "http"
    return f"{what} {_shown(value)} is not a DNS label (at most 63 lower-case letters, digits and '-')", \
        f"for example {fixed!r}"
