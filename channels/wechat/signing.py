"""WeChat Pay v3 signatures, callback encryption and sensitive-field encryption.

The merchant signs each request with its RSA key over ``METHOD\\nURL\\ntimestamp\\nnonce\\nbody\\n``
and names the key by its certificate serial in the ``Authorization`` header. The platform signs
every response and callback over ``timestamp\\nnonce\\nbody\\n`` and sends the signature in the
``Wechatpay-*`` headers. A callback's ``resource`` is sealed with AEAD_AES_256_GCM under the
merchant's 32-byte APIv3 key. A sensitive request field (a payee's name) is encrypted with the
platform's public key, RSA-OAEP with SHA-1, and the request names that key in
``Wechatpay-Serial``. Signatures are made over bytes, never over re-encoded text, so that what is
verified is exactly what travelled.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP, PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA1, SHA256

AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
SKEW_SECONDS = 300
RESOURCE_ALGORITHM = "AEAD_AES_256_GCM"
APIV3_KEY_BYTES = 32
GCM_NONCE_CHARS = 12

# The headers the platform signs its answers and callbacks with.
TIMESTAMP_HEADER = "Wechatpay-Timestamp"
NONCE_HEADER = "Wechatpay-Nonce"
SIGNATURE_HEADER = "Wechatpay-Signature"
SERIAL_HEADER = "Wechatpay-Serial"
SIGNATURE_TYPE_HEADER = "Wechatpay-Signature-Type"

_AUTH_FIELDS = ("mchid", "nonce_str", "timestamp", "serial_no", "signature")
_AUTH_PAIR = re.compile(r'(\w+)="([^"]*)"')
_NONCE_ALPHABET = string.ascii_uppercase + string.digits


class SignatureRejected(ValueError):
    """A signature, header or timestamp that does not verify; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ResourceUnreadable(ValueError):
    """A callback resource that cannot be decrypted (wrong key, tampered text or tag)."""


def apiv3_key_bytes(key: str | bytes) -> bytes:
    """The APIv3 key as the 32 bytes AES-256 needs; raises ValueError for any other length."""
    raw = key.encode("ascii") if isinstance(key, str) else key
    if len(raw) != APIV3_KEY_BYTES:
        raise ValueError(f"an APIv3 key has {APIV3_KEY_BYTES} bytes, not {len(raw)}")
    return raw


def new_nonce(length: int = 32) -> str:
    """A random nonce of upper-case letters and digits, as the channel's own nonces look."""
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))


def sign_message(private_key: RSAPrivateKey, message: bytes) -> str:
    """SHA256withRSA (PKCS#1 v1.5) over ``message``, base64-encoded."""
    signature = private_key.sign(message, PKCS1v15(), SHA256())
    return base64.b64encode(signature).decode("ascii")


def verifies(public_key: RSAPublicKey, message: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) is a SHA256withRSA signature of ``message``."""
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, message, PKCS1v15(), SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def check_skew(timestamp: str, now: float | None = None, tolerance: int = SKEW_SECONDS) -> None:
    """Refuse a Unix-seconds timestamp further than ``tolerance`` from ``now``."""
    if not timestamp.isdigit():
        raise SignatureRejected("timestamp is not a number of seconds")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        raise SignatureRejected("timestamp outside the allowed clock skew")


# --- requests: signed by the merchant ---------------------------------------------------------


def request_message(method: str, url: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """What a request signature covers; ``url`` is the path with its query string."""
    head = f"{method.upper()}\n{url}\n{timestamp}\n{nonce}\n".encode()
    return head + body + b"\n"


@dataclass(frozen=True)
class Authorization:
    """The parts of a request's ``Authorization`` header."""

    mchid: str
    nonce_str: str
    timestamp: str
    serial_no: str
    signature: str

    def header(self) -> str:
        """The header value, in the channel's scheme."""
        pairs = ",".join(f'{name}="{getattr(self, name)}"' for name in _AUTH_FIELDS)
        return f"{AUTH_SCHEME} {pairs}"


@dataclass(frozen=True)
class MerchantSigner:
    """Signs a merchant's requests with its private key, named by its certificate serial."""

    mchid: str
    serial_no: str
    private_key: RSAPrivateKey

    def authorize(
        self, method: str, url: str, body: bytes, now: float | None = None
    ) -> Authorization:
        """The signed authorization of one request (``url`` is path and query)."""
        timestamp = str(int(time.time() if now is None else now))
        nonce = new_nonce()
        message = request_message(method, url, timestamp, nonce, body)
        signature = sign_message(self.private_key, message)
        return Authorization(self.mchid, nonce, timestamp, self.serial_no, signature)


def parse_authorization(header: str) -> Authorization:
    """Read an ``Authorization`` header; raises SignatureRejected when it is not one."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme != AUTH_SCHEME:
        raise SignatureRejected(f"authorization scheme is not {AUTH_SCHEME}")
    pairs = dict(_AUTH_PAIR.findall(rest))
    missing = [name for name in _AUTH_FIELDS if not pairs.get(name)]
    if missing:
        raise SignatureRejected(f"authorization lacks {', '.join(missing)}")
    return Authorization(**{name: pairs[name] for name in _AUTH_FIELDS})


def verify_request(
    authorization: Authorization,
    method: str,
    url: str,
    body: bytes,
    public_key: RSAPublicKey,
    now: float | None = None,
) -> None:
    """Check a request's signature and timestamp; raises SignatureRejected."""
    check_skew(authorization.timestamp, now)
    message = request_message(method, url, authorization.timestamp, authorization.nonce_str, body)
    if not verifies(public_key, message, authorization.signature):
        raise SignatureRejected("request signature does not verify")


# --- responses and callbacks: signed by the platform ------------------------------------------


def response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What a response or callback signature covers."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


@dataclass(frozen=True)
class PlatformSigner:
    """Signs the platform's answers and callbacks with its private key."""

    serial_no: str
    private_key: RSAPrivateKey

    def headers(self, body: bytes, now: float | None = None) -> dict[str, str]:
        """The ``Wechatpay-*`` headers that sign ``body``."""
        timestamp = str(int(time.time() if now is None else now))
        nonce = new_nonce()
        signature = sign_message(self.private_key, response_message(timestamp, nonce, body))
        return {
            TIMESTAMP_HEADER: timestamp,
            NONCE_HEADER: nonce,
            SIGNATURE_HEADER: signature,
            SERIAL_HEADER: self.serial_no,
            SIGNATURE_TYPE_HEADER: AUTH_SCHEME,
        }


@dataclass(frozen=True)
class PlatformVerifier:
    """Checks that an answer or callback was signed by the platform key we were given."""

    serial_no: str
    public_key: RSAPublicKey

    def verify(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> None:
        """Check the ``Wechatpay-*`` signature of ``body``; raises SignatureRejected."""
        lowered = {name.lower(): value for name, value in headers.items()}
        timestamp, nonce, signature, serial = (
            lowered.get(name.lower(), "")
            for name in (TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER, SERIAL_HEADER)
        )
        if not (timestamp and nonce and signature):
            raise SignatureRejected("missing Wechatpay signature headers")
        if serial != self.serial_no:
            raise SignatureRejected(f"unknown platform serial {serial!r}")
        check_skew(timestamp, now)
        if not verifies(self.public_key, response_message(timestamp, nonce, body), signature):
            raise SignatureRejected("platform signature does not verify")


# --- callback resources ---------------------------------------------------------------------


def encrypt_resource(
    apiv3_key: bytes, plaintext: bytes, associated_data: str, original_type: str
) -> dict[str, str]:
    """A callback's ``resource`` object sealing ``plaintext`` under the APIv3 key."""
    nonce = new_nonce(GCM_NONCE_CHARS)
    sealed = AESGCM(apiv3_key).encrypt(nonce.encode("ascii"), plaintext, associated_data.encode())
    return {
        "algorithm": RESOURCE_ALGORITHM,
        "ciphertext": base64.b64encode(sealed).decode("ascii"),
        "associated_data": associated_data,
        "original_type": original_type,
        "nonce": nonce,
    }


def decrypt_resource(apiv3_key: bytes, resource: Mapping[str, Any]) -> bytes:
    """Open a callback's ``resource``; raises ResourceUnreadable when it does not open."""
    if resource.get("algorithm") != RESOURCE_ALGORITHM:
        raise ResourceUnreadable(f"resource algorithm is not {RESOURCE_ALGORITHM}")
    try:
        nonce = str(resource["nonce"]).encode()
        associated = str(resource.get("associated_data") or "").encode()
        sealed = base64.b64decode(str(resource["ciphertext"]), validate=True)
        return AESGCM(apiv3_key).decrypt(nonce, sealed, associated)
    except (KeyError, binascii.Error, InvalidTag, ValueError) as error:
        raise ResourceUnreadable("resource does not decrypt") from error


# --- sensitive fields -----------------------------------------------------------------------

# The channel's sensitive-field scheme is RSA/ECB/OAEPWithSHA-1AndMGF1Padding; SHA-1 here is
# the channel's choice of OAEP hash, not a signature.
_SENSITIVE_PADDING = OAEP(mgf=MGF1(algorithm=SHA1()), algorithm=SHA1(), label=None)


class SensitiveUnreadable(ValueError):
    """A sensitive field that does not decrypt under the platform key."""


def encrypt_sensitive(platform_key: RSAPublicKey, text: str) -> str:
    """``text`` encrypted for the platform (RSA-OAEP), base64-encoded."""
    sealed = platform_key.encrypt(text.encode("utf-8"), _SENSITIVE_PADDING)
    return base64.b64encode(sealed).decode("ascii")


def decrypt_sensitive(platform_key: RSAPrivateKey, ciphertext: str) -> str:
    """Open a sensitive field; raises SensitiveUnreadable."""
    try:
        sealed = base64.b64decode(ciphertext, validate=True)
        return platform_key.decrypt(sealed, _SENSITIVE_PADDING).decode("utf-8")
    except (binascii.Error, ValueError) as error:
        raise SensitiveUnreadable("sensitive field does not decrypt") from error
