"""A small response validator against docs/openapi.json, run by the harness on every response it
receives (pe_harness.RESPONSE_CHECKS), so the document cannot drift from what the module answers.

For a request whose path matches a documented path: the status must be declared for the operation,
the content type must be one the declared response has, and a JSON body must have what the schema
requires (required members, types, const and enum; $ref, allOf/anyOf/oneOf followed). Paths the
document does not describe (404s of unknown URIs, routes below a PEBaseURI) are not checked here.
Python standard library only."""
import json
import os

DOC_PATH = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "openapi.json"))
METHODS = ("get", "put", "post", "delete", "patch")
_doc = None


class OpenAPIMismatch(AssertionError):
    pass


def doc():
    global _doc
    if _doc is None:
        with open(DOC_PATH) as f:
            _doc = json.load(f)
    return _doc


def match_path(template, path):
    t, p = template.strip("/").split("/"), path.strip("/").split("/")
    if template == "/" or path == "/":
        return template == path
    if len(t) != len(p) or path.endswith("/") != template.endswith("/"):
        return False
    return all((a.startswith("{") and a.endswith("}") and b) or a == b for a, b in zip(t, p))


def find_operation(method, path):
    """(template, operation) for method and path, or (template, None) when the path is documented
    but not that method, or (None, None). Literal templates win over placeholders."""
    path = path.split("?", 1)[0]
    cands = [t for t in doc()["paths"] if match_path(t, path)]
    if not cands:
        return None, None
    cands.sort(key=lambda t: t.count("{"))
    m = "get" if method.upper() == "HEAD" else method.lower()
    for t in cands:
        op = doc()["paths"][t].get(m)
        if op:
            return t, op
    return cands[0], None


def resolve(node):
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise OpenAPIMismatch("external $ref %s" % ref)
        node = doc()
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def type_ok(value, t):
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, TYPES[t])


def check_schema(schema, value, where, problems):
    schema = resolve(schema)
    if not isinstance(schema, dict):
        return
    for sub in schema.get("allOf", []):
        check_schema(sub, value, where, problems)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            alts = []
            for sub in schema[key]:
                p = []
                check_schema(sub, value, where, p)
                alts.append(p)
            if all(alts):
                problems.append("%s: matches none of %s (%s)" % (where, key, "; ".join(a[0] for a in alts)))
    if "const" in schema and value != schema["const"]:
        problems.append("%s: %r is not %r" % (where, value, schema["const"]))
    if "enum" in schema and value not in schema["enum"]:
        problems.append("%s: %r is not one of %r" % (where, value, schema["enum"]))
    types = schema.get("type")
    if types is not None:
        types = types if isinstance(types, list) else [types]
        if not any(type_ok(value, t) for t in types):
            problems.append("%s: %r is not of type %s" % (where, value if len(repr(value)) < 80 else type(value).__name__,
                                                          "/".join(types)))
            return
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                problems.append("%s: required member %r is missing" % (where, name))
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                check_schema(sub, value[name], "%s.%s" % (where, name), problems)
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            check_schema(schema["items"], item, "%s[%d]" % (where, i), problems)


def problems_of(method, path, status, content_type, body):
    """What does not match the document (empty list: all matches)."""
    template, op = find_operation(method, path)
    if template is None:
        return []
    if op is None:
        return [] if status in (404, 405) else ["%s %s: no such operation in the document (status %d)" %
                                                (method, template, status)]
    responses = op.get("responses", {})
    declared = responses.get(str(status)) or responses.get("%dXX" % (status // 100)) or responses.get("default")
    name = "%s %s -> %d" % (method, template, status)
    if declared is None:
        return ["%s: status not declared (declared: %s)" % (name, ", ".join(sorted(responses)))]
    declared = resolve(declared)
    content = declared.get("content")
    if not content or method.upper() == "HEAD" or not body:
        return []
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if ctype not in content:
        return ["%s: content type %r not declared (declared: %s)" % (name, ctype, ", ".join(sorted(content)))]
    schema = content[ctype].get("schema")
    if ctype != "application/json" or schema is None:
        return []
    try:
        value = json.loads(body.decode("utf-8"))
    except ValueError as e:
        return ["%s: body is not JSON (%s)" % (name, e)]
    problems = []
    check_schema(schema, value, "body", problems)
    return ["%s: %s" % (name, p) for p in problems]


def check_response(method, path, resp):
    """The harness's hook: raise when a response does not match the document."""
    problems = problems_of(method, path, resp.status, resp.header("Content-Type"), resp.body)
    if problems:
        raise OpenAPIMismatch("response does not match docs/openapi.json:\n  " + "\n  ".join(problems[:10]))
