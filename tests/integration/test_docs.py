# SPDX-License-Identifier: Apache-2.0
"""Meta-checks: every directive the module registers is documented in docs/directives.md, and
every row of the directive table (SK_DIRECTIVES in mod_scalekit.c) has a merge rule (so virtual
hosts and locations inherit it). The list of directives comes from the built module itself
(`apache2 -L`) and is checked against the table."""
import re
import subprocess
from pathlib import Path

from httpd import Httpd

REPO = Path(__file__).resolve().parents[2]
SOURCE = (REPO / "mod_scalekit.c").read_text()
DOCS = (REPO / "docs" / "directives.md").read_text()


def registered_directives(module_path):
    h = Httpd(module_path, scalekit_conf="", locations="")
    try:
        p = subprocess.run(h._cmd("-L"), capture_output=True, text=True, env=h._env(), timeout=30)
    finally:
        h.cleanup()
    names = re.findall(r"^(Scalekit\w+) \(mod_scalekit\.c\)", p.stdout, re.M)
    assert names, p.stdout[-2000:] + p.stderr[-2000:]
    return names


def doc_section(name):
    m = re.search(r"^### %s\n(.*?)(?=^##)" % re.escape(name), DOCS + "\n## end", re.M | re.S)
    return m.group(1) if m else None


def test_every_directive_is_documented(module_path):
    names = registered_directives(module_path)
    assert len(names) >= 25
    for name in names:
        section = doc_section(name)
        assert section, "%s is not documented in docs/directives.md" % name
        for part in ("- Syntax: `%s" % name, "- Default: ", "- Context: ", "- Example: `%s " % name):
            assert part in section, "%s: docs lack '%s'" % (name, part)
    documented = re.findall(r"^### (Scalekit\w+)", DOCS, re.M)
    assert sorted(documented) == sorted(names), "documented but not registered: %s" % (
        set(documented) - set(names))


def split_args(text):
    """The top-level comma-separated arguments of a macro call's text (parentheses and string
    literals kept whole)."""
    args, depth, cur, quoted = [], 0, "", False
    for i, ch in enumerate(text):
        if quoted:
            cur += ch
            if ch == '"' and text[i - 1] != "\\":
                quoted = False
            continue
        if ch == '"':
            quoted = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(cur.strip())
            cur = ""
            continue
        cur += ch
    args.append(cur.strip())
    return args


def directive_table():
    """The rows of SK_DIRECTIVES in mod_scalekit.c, the one table every directive's name, scope,
    form, field, parser, default, merge rule and help come from: a list of dicts."""
    start = SOURCE.index("#define SK_DIRECTIVES(X)")
    lines = []
    for line in SOURCE[start:].splitlines()[1:]:
        lines.append(line.rstrip("\\").strip())
        if not line.endswith("\\"):
            break
    text = " ".join(lines)
    rows, at = [], 0
    while True:
        at = text.find("X(", at)
        if at < 0:
            return rows
        depth, end = 0, at + 1
        for end in range(at + 1, len(text)):
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            if depth == 0:
                break
        args = split_args(text[at + 2:end])
        assert len(args) == 8, "a row of SK_DIRECTIVES without its 8 columns: %s" % text[at:end + 1]
        rows.append(dict(zip(("name", "scope", "form", "field", "parser", "default", "merge",
                              "help"), args)))
        at = end


def conf_set_bits(struct):
    """The *_set bits the struct of a scope declares in include/sk_module.h."""
    header = (REPO / "include" / "sk_module.h").read_text()
    body = re.search(r"typedef struct %s \{(.*?)\} %s;" % (struct, struct), header, re.S).group(1)
    return set(re.findall(r"(\w+)_set:1", body))


def test_every_setting_has_a_merge_rule(module_path):
    """Every directive is a row of the table with a merge rule the merge functions apply to its
    field's _set bit, and a section in docs/directives.md; the table is what httpd registers."""
    rows = directive_table()
    assert len(rows) >= 25
    assert [r["name"] for r in rows] == registered_directives(module_path), \
        "SK_DIRECTIVES and apache2 -L disagree"
    rules = {m.group(1): m.group(2) for m in re.finditer(
        r"^#define SK_MERGE_(\w+)\(f\)(.*?)(?<!\\)$", SOURCE, re.M | re.S)}
    assert "FIELD" in rules
    for scope, struct in (("SERVER", "sk_server_conf"), ("DIR", "sk_dir_conf")):
        merge = re.search(r"^static void \*sk_merge_%s_conf\(.*?^}" % scope.lower(), SOURCE,
                          re.M | re.S)
        assert merge and "SK_DIRECTIVES(SK_X_MERGE_%s)" % scope in merge.group(0), \
            "sk_merge_%s_conf does not apply the table" % scope.lower()
        bits = conf_set_bits(struct)
        for row in (r for r in rows if r["scope"] == scope):
            name, field, rule = row["name"], row["field"], row["merge"]
            assert field in bits, "%s: %s has no %s_set bit in %s" % (name, field, field, struct)
            assert rule in rules, "%s: no merge rule (merge column %r; rules: %s)" % (
                name, rule, ", ".join(sorted(rules)))
            assert "f##_set" in rules[rule] or "SK_MERGE_FIELD(f)" in rules[rule], \
                "%s: merge rule %s ignores the _set bit" % (name, rule)
            assert "SK_DEFAULT_%s(" % rule in SOURCE, "%s: rule %s has no default" % (name, rule)
            assert doc_section(name), "%s: no section in docs/directives.md" % name
    assert {r["scope"] for r in rows} == {"SERVER", "DIR"}


USER_DOCS = ("README.md", "SECURITY.md", "docs/directives.md", "httpd-conf/scalekit.conf",
             "httpd-conf/example-site.conf")


def test_user_documents_name_only_what_exists(module_path):
    """Every directive a user document names is one the module registers, and every command
    it names is in the tree."""
    names = set(registered_directives(module_path))
    for doc in USER_DOCS:
        text = (REPO / doc).read_text()
        named = set(re.findall(r"\b(Scalekit[A-Z]\w+)\b", text))
        assert named <= names, "%s names directives the module lacks: %s" % (doc, named - names)
        for cmd in set(re.findall(r"\b((?:scripts|tests|bench)/[\w./-]*\w)", text)):
            assert (REPO / cmd).exists(), "%s names %s, which is not in the tree" % (doc, cmd)


def test_user_documents_are_no_development_log():
    """Users' documents speak of the module, not of how it was built."""
    for doc in ("README.md", "SECURITY.md", "docs/directives.md"):
        text = (REPO / doc).read_text()
        hit = re.search(r"\b[Ii]ssues? #?\d+\b|\bsession \d+\b|\b[0-9a-f]{7,40}\b(?=\)|,| )", text)
        assert not hit, "%s reads like a development log: %r" % (doc, hit.group(0))
