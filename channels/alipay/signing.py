"""RSA2 signatures (SHA256withRSA, PKCS#1 v1.5) over parameters and gateway answers.

Requests and notifications are signed over their parameters: ``sign`` and empty values are
dropped (and ``sign_type`` too for notifications), the rest sorted by key in ASCII order and
joined as ``k=v&k2=v2``. A gateway answer is signed over the raw JSON text of its
``<method>_response`` member, exactly as sent, so it is located in the text, not re-serialised.
"""

from __future__ import annotations

import base64
import binascii
import json
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SIGN = "sign"
SIGN_TYPE_PARAM = "sign_type"


class KeyUnreadable(ValueError):
    """Key text that is not an RSA key in PEM (or the console's bare base64)."""


class AnswerUnverified(ValueError):
    """A gateway answer that could not be read or whose signature does not hold."""


def signing_text(params: Mapping[str, str], *, notice: bool = False) -> str:
    """The text signed for ``params``; a notification's also leaves out ``sign_type``."""
    dropped = {SIGN, SIGN_TYPE_PARAM} if notice else {SIGN}
    kept = sorted((key, value) for key, value in params.items() if key not in dropped and value)
    return "&".join(f"{key}={value}" for key, value in kept)


def sign_text(text: str, key: rsa.RSAPrivateKey) -> str:
    """The base64 SHA256withRSA signature of ``text`` in UTF-8."""
    signature = key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def verify_text(text: str, signature: str, key: rsa.RSAPublicKey) -> bool:
    """Whether ``signature`` (base64) is ``key``'s signature of ``text``."""
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def sign_params(params: Mapping[str, str], key: rsa.RSAPrivateKey) -> str:
    """The ``sign`` value for a request's parameters."""
    return sign_text(signing_text(params), key)


def verify_params(
    params: Mapping[str, str], key: rsa.RSAPublicKey, *, notice: bool = False
) -> bool:
    """Whether the parameters carry a good ``sign``; a missing one is not good."""
    signature = params.get(SIGN, "")
    return bool(signature) and verify_text(signing_text(params, notice=notice), signature, key)


def signed_answer(member: str, node: Mapping[str, Any], key: rsa.RSAPrivateKey) -> str:
    """A gateway answer's JSON text: ``node`` under ``member``, then the signature of its text."""
    node_text = json.dumps(node, ensure_ascii=False, separators=(",", ":"))
    member_text = json.dumps(member)
    return f'{{{member_text}:{node_text},"sign":"{sign_text(node_text, key)}"}}'


def verified_answer(body: str, members: Sequence[str], key: rsa.RSAPublicKey) -> dict[str, Any]:
    """The node under the first of ``members`` the answer holds, once its signature holds;
    raises AnswerUnverified otherwise."""
    document = _json_object(body)
    member = next((name for name in members if name in document), None)
    if member is None:
        raise AnswerUnverified(f"the answer holds none of {', '.join(members)}")
    signature = document.get(SIGN)
    if not isinstance(signature, str) or not signature:
        raise AnswerUnverified("the answer is not signed")
    if not verify_text(answer_node_text(body, member), signature, key):
        raise AnswerUnverified("the answer's signature does not hold")
    node = document[member]
    if not isinstance(node, dict):
        raise AnswerUnverified(f"{member} is not an object")
    return node


def answer_node_text(body: str, member: str) -> str:
    """The raw text of ``member``'s value as it stands in ``body`` (what the channel signed)."""
    document = _json_object(body)
    if member not in document:
        raise AnswerUnverified(f"the answer has no {member}")
    marker = json.dumps(member)
    start = body.find(marker)
    while start >= 0:
        node_text = _value_after(body, start + len(marker))
        # The name could also stand inside an earlier string; only the member's own value fits.
        if node_text is not None and json.loads(node_text) == document[member]:
            return node_text
        start = body.find(marker, start + 1)
    raise AnswerUnverified(f"cannot locate {member} in the answer")


def _value_after(body: str, position: int) -> str | None:
    rest = body[position:]
    stripped = rest.lstrip()
    if not stripped.startswith(":"):
        return None
    begin = len(body) - len(stripped[1:].lstrip())
    try:
        _, end = json.JSONDecoder().raw_decode(body, begin)
    except json.JSONDecodeError:
        return None
    return body[begin:end]


def _json_object(body: str) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except json.JSONDecodeError as error:
        raise AnswerUnverified(f"the answer is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise AnswerUnverified("the answer is not a JSON object")
    return document


def new_private_key() -> rsa.RSAPrivateKey:
    """A fresh 2048-bit RSA key, the size the channel asks of an application."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def load_private_key(text: str | bytes) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM (PKCS#1 or PKCS#8) or the console's bare base64 PKCS#8."""
    try:
        key = serialization.load_pem_private_key(_pem(text, "PRIVATE KEY"), password=None)
    except (ValueError, TypeError) as error:
        raise KeyUnreadable(f"not an RSA private key: {error}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyUnreadable("the private key is not an RSA key")
    return key


def load_public_key(text: str | bytes) -> rsa.RSAPublicKey:
    """An RSA public key from PEM or the console's bare base64 (SubjectPublicKeyInfo)."""
    try:
        key = serialization.load_pem_public_key(_pem(text, "PUBLIC KEY"))
    except (ValueError, TypeError) as error:
        raise KeyUnreadable(f"not an RSA public key: {error}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyUnreadable("the public key is not an RSA key")
    return key


def private_key_pem(key: rsa.RSAPrivateKey) -> str:
    """The private key as PKCS#8 PEM text, unencrypted."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def public_key_pem(key: rsa.RSAPublicKey) -> str:
    """The public key as SubjectPublicKeyInfo PEM text."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def _pem(text: str | bytes, label: str) -> bytes:
    body = text.decode("ascii") if isinstance(text, bytes) else text
    if "-----BEGIN" in body:
        return body.encode("ascii")
    # The open platform's console hands keys out as one bare base64 line.
    lines = "\n".join(textwrap.wrap("".join(body.split()), 64))
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----\n".encode("ascii")
