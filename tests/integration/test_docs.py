"""Meta-checks: every directive the module registers is documented in docs/directives.md, and
every setting the command table can set has a merge rule (so virtual hosts and locations inherit
it). The list of directives comes from the built module itself (`apache2 -L`)."""
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


def function_body(name):
    m = re.search(r"^static [^\n]*\b%s\(.*?^}" % re.escape(name), SOURCE, re.M | re.S)
    assert m, "no function %s" % name
    return m.group(0)


def merged_fields():
    merges = function_body("sk_merge_server_conf") + function_body("sk_merge_dir_conf")
    return set(re.findall(r"SK_MERGE\((\w+)\)", merges)) | set(re.findall(r"(\w+)_set = add->", merges))


def test_every_setting_has_a_merge_rule():
    table = re.findall(r'AP_INIT_\w+\("(Scalekit\w+)", (\w+),', SOURCE)
    ints = re.findall(r'SK_INT\("(Scalekit\w+)", (\d+),', SOURCE)
    assert len(table) + len(ints) >= 25
    merged = merged_fields()
    for name, setter in table:
        fields = set(re.findall(r"->(\w+)_set = 1", function_body(setter)))
        assert fields, "%s: its setter %s records no *_set bit" % (name, setter)
        assert fields <= merged, "%s: no merge rule for %s" % (name, fields - merged)
    offsets = re.findall(r"APR_OFFSETOF\(sk_server_conf, (\w+)\)", function_body("sk_set_int") +
                         SOURCE[SOURCE.index("sk_int_settings[] = {"):])
    for name, index in ints:
        field = offsets[int(index)]
        assert field in merged, "%s: no merge rule for %s" % (name, field)
        assert re.search(r"case %s: c->%s_set = 1;" % (index, field), SOURCE), "%s: no *_set bit" % name


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
