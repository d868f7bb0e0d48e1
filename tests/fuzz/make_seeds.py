#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Write the fuzz seed corpora (tests/fuzz/corpus/fuzz_jwt, fuzz_jwks).

Tokens are signed with the example keys published in RFC 7515 appendices
A.2 (RSA) and A.3 (P-256), the same public keys fuzz_jwt.c verifies against,
so valid seeds reach the claim checks and the cache. Pure Python (textbook
RSA, PSS and ECDSA): no third-party module, and the RS256 signer is checked
against the RFC's own A.2 signature before anything is written.
Run from the repository root: python3 tests/fuzz/make_seeds.py
"""
import base64, hashlib, hmac, json, os, subprocess

def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def unb64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

def num(s):
    return int.from_bytes(unb64(s), "big")

# RFC 7515 A.2 (RSA) and A.3 (P-256): published example keys.
N = num("ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0B"
        "m4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5"
        "z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7"
        "aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ")
D = num("Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2N"
        "XOoAJe46sui395IW_GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_"
        "V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYTCBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jT"
        "j3ccPDVZFD9pIuhLhBOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ")
K = 256
EC_D = num("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI")
A2 = ("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNv"
      "bS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4"
      "Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xB"
      "ArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1p"
      "hCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw")
A3 = ("eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNv"
      "bS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKT"
      "UJqPP3-Kg6NU1Q")

def rs256(data):
    di = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(data).digest()
    em = b"\x00\x01" + b"\xff" * (K - 3 - len(di)) + b"\x00" + di
    return pow(int.from_bytes(em, "big"), D, N).to_bytes(K, "big")

def mgf1(seed, n):
    out = b""
    for c in range((n + 31) // 32):
        out += hashlib.sha256(seed + c.to_bytes(4, "big")).digest()
    return out[:n]

def ps256(data):
    salt = hashlib.sha256(b"salt" + data).digest()            # deterministic seeds
    mh = hashlib.sha256(data).digest()
    h = hashlib.sha256(b"\x00" * 8 + mh + salt).digest()
    emlen = K                                                  # emBits = 2047
    db = b"\x00" * (emlen - 32 - 32 - 2) + b"\x01" + salt
    masked = bytes(a ^ b for a, b in zip(db, mgf1(h, emlen - 33)))
    masked = bytes([masked[0] & 0x7f]) + masked[1:]
    em = masked + h + b"\xbc"
    return pow(int.from_bytes(em, "big"), D, N).to_bytes(K, "big")

# P-256 arithmetic, affine, enough for a few signatures.
P = 2**256 - 2**224 + 2**192 + 2**96 - 1
Q = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551
A = P - 3
G = (0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296,
     0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5)

def ec_add(p1, p2):
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    if p1[0] == p2[0] and (p1[1] + p2[1]) % P == 0:
        return None
    if p1 == p2:
        lam = (3 * p1[0] * p1[0] + A) * pow(2 * p1[1], -1, P) % P
    else:
        lam = (p2[1] - p1[1]) * pow(p2[0] - p1[0], -1, P) % P
    x = (lam * lam - p1[0] - p2[0]) % P
    return (x, (lam * (p1[0] - x) - p1[1]) % P)

def ec_mul(k, pt):
    r = None
    while k:
        if k & 1:
            r = ec_add(r, pt)
        pt = ec_add(pt, pt)
        k >>= 1
    return r

def es256(data):
    z = int.from_bytes(hashlib.sha256(data).digest(), "big")
    k = int.from_bytes(hashlib.sha256(b"k" + EC_D.to_bytes(32, "big") + data).digest(), "big") % Q
    r = ec_mul(k, G)[0] % Q
    s = pow(k, -1, Q) * (z + r * EC_D) % Q
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")

def token(header, payload, signer=rs256, raw_sig=None):
    h = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    p = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    inp = (b64(h.encode()) + "." + b64(p.encode())).encode()
    sig = raw_sig if raw_sig is not None else (signer(inp) if signer else b"")
    return inp.decode() + "." + b64(sig)

assert A2.rsplit(".", 1)[1] == b64(rs256(A2.rsplit(".", 1)[0].encode())), "RS256 signer is wrong"
assert ec_mul(EC_D, G)[0] == num("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU")

EXP, IAT = 1300819380, 1300818000
good = {"iss": "joe", "aud": ["fuzz-aud"], "sub": "usr_1", "oid": "org_1", "sid": "ses_1",
        "jti": "tkn_1", "exp": EXP, "iat": IAT, "nbf": IAT, "client_id": "fuzz-aud",
        "roles": ["admin", "viewer"], "permissions": ["orders:read", "orders:write"],
        "scope": "openid profile", "xoid": "x", "xuid": "y"}
rs = {"alg": "RS256", "typ": "JWT", "kid": "rsa1"}
ps = {"alg": "PS256", "kid": "ps1"}
es = {"alg": "ES256", "kid": "ec1"}

def with_(**kw):
    d = dict(good)
    for k, v in kw.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    return d

jwt_seeds = {
    "rfc7515_a2": A2, "rfc7515_a3": A3,
    "valid_rs256": token(rs, good), "valid_ps256": token(ps, good, ps256),
    "valid_es256": token(es, good, es256),
    "valid_at_jwt": token({"alg": "RS256", "typ": "at+jwt", "kid": "rsa1"}, good),
    "valid_m2m": token(rs, {"iss": "joe", "aud": "fuzz-aud", "sub": "m2morg_1", "oid": "org_1",
                            "exp": EXP, "iat": IAT, "nbf": IAT, "scopes": ["a:read", "b:write"]}),
    "valid_id_token": token(rs, {"iss": "joe", "aud": ["fuzz-aud"], "azp": "fuzz-aud",
                                 "sub": "usr_1", "email": "a@b.example", "name": "Ada",
                                 "exp": EXP, "iat": IAT, "amr": ["conn_1"], "nonce": "n"}),
    "valid_nokid": token({"alg": "RS256"}, good),
    "valid_real_exp": token(rs, with_(exp=1300819380.5)),
    "expired": token(rs, with_(exp=1300810000)),
    "exp_missing": token(rs, with_(exp=None)),
    "exp_string": token(rs, with_(exp="1300819380")),
    "exp_huge": token(rs, '{"iss":"joe","aud":"fuzz-aud","exp":1e400}'),
    "nbf_future": token(rs, with_(nbf=1300829000)),
    "iat_future": token(rs, with_(iat=1300829000)),
    "iss_slash": token(rs, with_(iss="joe/")),
    "iss_case": token(rs, with_(iss="Joe")),
    "aud_other": token(rs, with_(aud=["other"])),
    "aud_empty": token(rs, with_(aud=[])),
    "aud_nonstring": token(rs, with_(aud=[1, None])),
    "dup_payload": token(rs, '{"iss":"joe","aud":"fuzz-aud","exp":1300819380,"iss":"x"}'),
    "payload_array": token(rs, '["joe"]'),
    "alg_none": token({"alg": "none"}, good, None),
    "alg_none_sig": token({"alg": "none", "kid": "rsa1"}, good),
    "alg_None": token({"alg": "None"}, good, None),
    "hs256": token({"alg": "HS256", "kid": "rsa1"}, good,
                   lambda d: hmac.new(N.to_bytes(K, "big"), d, hashlib.sha256).digest()),
    "hs512": token({"alg": "HS512"}, good, lambda d: hmac.new(b"k", d, hashlib.sha512).digest()),
    "crit": token({"alg": "RS256", "kid": "rsa1", "crit": ["b64"], "b64": False}, good),
    "kid_unknown": token({"alg": "RS256", "kid": "snk_other"}, good),
    "kid_number": token({"alg": "RS256", "kid": 1}, good),
    "rs_on_ec_key": token({"alg": "RS256", "kid": "ec1"}, good),
    "es_on_rsa_key": token({"alg": "ES256", "kid": "rsa1"}, good, es256),
    "typ_bad": token({"alg": "RS256", "kid": "rsa1", "typ": "JWE"}, good),
    "header_array": token("[1]", good),
    "header_dup": token('{"alg":"RS256","alg":"none"}', good),
    "segments_2": "eyJhbGciOiJSUzI1NiJ9.e30",
    "segments_4": token(rs, good) + ".e30",
    "empty_sig": token(rs, good, None),
    "padding": token(rs, good) + "==",
    "plus_slash": token(rs, good).replace("-", "+").replace("_", "/"),
    "deep": token(rs, '{"iss":"joe","a":' + "[" * 1200 + "]" * 1200 + "}"),
}

jwks_seeds = {
    "rfc7515_a2": {"keys": [{"kty": "RSA", "n": b64(N.to_bytes(K, "big")), "e": "AQAB"}]},
    "rfc7515_a3": {"keys": [{"kty": "EC", "crv": "P-256",
                             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]},
}
def rsa_jwk(kid, alg="RS256"):
    der = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                          "rsa_keygen_bits:2048", "-outform", "PEM"], capture_output=True).stdout
    txt = subprocess.run(["openssl", "pkey", "-noout", "-text"], input=der,
                         capture_output=True).stdout.decode()
    mod = txt.split("modulus:")[1].split("publicExponent")[0]
    n = int("".join(mod.split()).replace(":", ""), 16)
    j = {"kty": "RSA", "kid": kid, "use": "sig", "n": b64(n.to_bytes((n.bit_length() + 7) // 8, "big")), "e": "AQAB"}
    if alg:
        j["alg"] = alg
    return j
a2 = dict(jwks_seeds["rfc7515_a2"]["keys"][0], kid="rsa1", use="sig", alg="RS256")
a3 = dict(jwks_seeds["rfc7515_a3"]["keys"][0], kid="ec1", alg="ES256")
sk1, sk2 = rsa_jwk("snk_8e3f1a2b"), rsa_jwk("snk_77c0d9e1")
jwks_seeds.update({
    "scalekit_one": {"keys": [sk1]},
    "scalekit_rotation": {"keys": [sk2, sk1]},
    "mixed": {"keys": [a2, a3, dict(a2, kid="ps1", alg="PS256")]},
    "skip_bad": {"keys": [dict(a2, use="enc"), {"kty": "oct", "k": "c2VjcmV0", "kid": "h"},
                          dict(a2, kid="rs512", alg="RS512"), dict(a3, crv="P-384"),
                          dict(a2, n="AQAB"), dict(a3, x="AAAA"), {"kid": 1}, [], a2]},
    "duplicate_kid": {"keys": [a2, dict(sk1, kid="rsa1")]},
    "key_ops": {"keys": [dict(a2, key_ops=["verify"]), dict(a3, key_ops=["encrypt"])]},
    "okp": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]},
})
raw_jwks = {"not_json": "<html>502</html>", "empty_keys": '{"keys":[]}', "keys_object": '{"keys":{}}',
            "trailing": '{"keys":[]} x', "padded_n": '{"keys":[{"kty":"RSA","n":"AQAB==","e":"AQAB"}]}'}

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
for name, seeds in (("fuzz_jwt", jwt_seeds), ("fuzz_jwks", jwks_seeds), ("fuzz_jwks", raw_jwks)):
    os.makedirs(os.path.join(root, name), exist_ok=True)
    for k, v in seeds.items():
        data = v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
        with open(os.path.join(root, name, "seed_" + k), "w") as f:
            f.write(data)
print("seeds written")
