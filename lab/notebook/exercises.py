"""Exercises: the learner's manifest validated and applied, and a verdict the learner can read.

A lesson's check cell names what must hold once the learner's manifest is in (a function that
asserts) and makes its check with `exercise`: the validator's findings (file line, field path,
message, what to write instead) or the target's refusal are printed and the answer is False;
otherwise the manifest is applied, the target has converged, and the function's verdict is
printed (`ok`, or what failed and the hint):

    def rewritten():   # /v2/products/42 arrives at the product service as /api/42
        nb.expect(t, "/v2/products/42", 200, seen_path="/api/42", timeout=5, echo=False)

    check_exercise = nb.exercise(t, rewritten, TIMEOUT_S, ok="it works: /v2/products/42 arrives as /api/42")
    check_exercise(ANSWER)

The hidden solution cell after it ends with `assert check_exercise(ANSWER)`.
"""
from __future__ import annotations

from .common import NotebookError, ROOT, tidy
from .display import _rel
from .resources import condition, quiet


def findings(text: str, name: str = "exercise.yaml", context: tuple = ()) -> list:
    """The validator's errors for a manifest text, read together with the manifest files in
    `context` (as `appmesh-lab validate CONTEXT... exercise.yaml` would: e.g. the namespace whose
    labels decide injection); only the text's own errors are returned."""
    from ..model import validate_texts
    texts = [(_rel(p), (ROOT / p).read_text()) for p in context] + [(name, text)]
    return [p for p in validate_texts(texts).errors if p.file == name]


def try_manifest(t, text: str, timeout: float = 30.0, name: str = "exercise.yaml", context: tuple = ()) -> bool:
    """Validate `text` (with the files in `context`) and apply it to the target. False, with
    every finding printed (line, field, message, hint), when the validator or the target
    refuses it (nothing is changed then); True once it is applied and the target has converged."""
    errors = findings(text, name, context)
    if errors:
        print("not yet: the validator refuses it")
        for p in errors:
            print(tidy(f"  {name} line {p.line}: {p.path}: {p.message}\n    hint: {p.hint}"))
        return False
    with quiet(t):
        answer = t.try_apply(text, is_text=True)
    if answer.get("rejected"):
        print("not yet: the apply was refused, nothing changed")
        for p in answer.get("problems") or []:
            if p.get("severity") == "error":
                where = f"line {p['line']}: {p['path']}: " if p.get("path") else ""
                hint = f"\n    hint: {p['hint']}" if p.get("hint") else ""
                print(tidy(f"  {where}{p['message']}{hint}"))
        return False
    try:
        if "versions" in answer:   # local: wait for exactly this change to be ACKed
            t.converge(timeout, answer["versions"])
        elif hasattr(t, "converge"):
            t.converge(timeout)
    except Exception as exc:  # noqa: BLE001 - a target error while waiting is the learner's answer too
        print(f"not yet: applied, but the target did not settle: {exc}")
        return False
    return True


def verdict(check, ok: str, hint: str = "") -> bool:
    """Run `check` (a function that asserts); print `ok` and return True when it holds, else
    print what failed and `hint`, and return False (no traceback for the learner)."""
    try:
        check()
    except (AssertionError, NotebookError) as exc:
        print("not yet:", tidy(str(exc)).splitlines()[0] if str(exc) else type(exc).__name__)
        if hint:
            print("  hint:", hint)
        return False
    print(ok)
    return True


def settled(t, kind: str, name: str, namespace: str | None = None, timeout: float = 30.0) -> dict:
    """The `<Kind>Active` condition of a resource once the control plane has decided it (its
    reason is no longer Pending): True, or False with the reason and message that say why."""
    def decided():
        items = t.get(kind, name, namespace)
        assert items, f"{kind} {name} not found"
        c = condition(items[0])
        assert c and c.get("reason") != "Pending", f"{kind} {name}: {c.get('reason', 'no condition yet')}"
        return c
    return t.eventually(decided, timeout, what=f"{kind} {name} decided")


def active(t, kind: str, name: str, namespace: str | None = None, timeout: float = 30.0) -> dict:
    """Assert that a resource is active once decided, naming the reason when it is not."""
    c = settled(t, kind, name, namespace, timeout)
    assert c.get("status") == "True", f"{kind} {name} is not active: {c.get('reason')}: {c.get('message')}"
    return c


def exercise(t, check, timeout: float = 30.0, ok: str = "it works", hint: str = "", context: tuple = ()):
    """An exercise's check, as a function of the learner's manifest text: `try_manifest` (the
    files in `context` read with it), then `verdict(check, ok, hint)`. It returns True when the
    answer is applied and `check` holds; False, with what is wrong printed, otherwise."""
    def check_answer(text: str) -> bool:
        return try_manifest(t, text, timeout, context=context) and verdict(check, ok, hint)
    check_answer.__doc__ = f"True when the manifest applies and {check.__name__}() holds. {check.__doc__ or ''}".strip()
    return check_answer
