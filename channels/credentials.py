"""The credentials file: which channels the dispatcher speaks to, where, and with which keys.

A JSON document ``{"channels": {"<name>": {"kind": "alipay" | "wechat" | "card", ...}}}``;
each entry holds what its kind's adapter needs (base URL, ids, PEM keys, secrets, a timeout).
The simulated fleet writes one for its simulators; a deployment writes its own. Several
channels may share a kind (two card acquirers), each under its own name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from channels.alipay import AlipayAdapter
from channels.base import ChannelAdapter
from channels.card import CardAdapter
from channels.wechat import WechatAdapter

Entry = Mapping[str, Any]


class CredentialsError(ValueError):
    """A credentials file that names an unknown kind or lacks what an adapter needs."""


def private_key(pem: str) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM text."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CredentialsError("the key is not an RSA private key")
    return key


def public_key(pem: str) -> rsa.RSAPublicKey:
    """An RSA public key from PEM text."""
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise CredentialsError("the key is not an RSA public key")
    return key


def private_pem(key: rsa.RSAPrivateKey) -> str:
    """The private key as unencrypted PKCS#8 PEM text."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(key: rsa.RSAPublicKey) -> str:
    """The public key as SubjectPublicKeyInfo PEM text."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _alipay(name: str, entry: Entry) -> ChannelAdapter:
    adapter = AlipayAdapter(
        entry["base_url"],
        entry["app_id"],
        private_key(entry["app_private_key"]),
        public_key(entry["channel_public_key"]),
        float(entry.get("timeout_seconds", 10.0)),
    )
    adapter.name = name
    return adapter


def _wechat(name: str, entry: Entry) -> ChannelAdapter:
    adapter = WechatAdapter(
        base_url=entry["base_url"],
        mchid=entry["mchid"],
        appid=entry["appid"],
        merchant_key=private_key(entry["merchant_private_key"]),
        merchant_serial=entry["merchant_serial"],
        platform_key=public_key(entry["platform_public_key"]),
        platform_serial=entry["platform_serial"],
        apiv3_key=entry["apiv3_key"],
        timeout=float(entry.get("timeout_seconds", 10.0)),
    )
    adapter.name = name
    return adapter


def _card(name: str, entry: Entry) -> ChannelAdapter:
    adapter = CardAdapter(
        entry["base_url"],
        entry["secret_key"],
        entry["webhook_secret"],
        float(entry.get("timeout_seconds", 10.0)),
        payment_method=entry.get("payment_method", "pm_card_visa"),
    )
    adapter.name = name
    return adapter


ADAPTER_KINDS: dict[str, Callable[[str, Entry], ChannelAdapter]] = {
    "alipay": _alipay,
    "wechat": _wechat,
    "card": _card,
}


def adapters_from(document: Mapping[str, Any]) -> dict[str, ChannelAdapter]:
    """An adapter per channel of a credentials document; raises CredentialsError."""
    adapters = {}
    for name, entry in document.get("channels", {}).items():
        build = ADAPTER_KINDS.get(entry.get("kind", ""))
        if build is None:
            raise CredentialsError(f"channel {name!r}: unknown kind {entry.get('kind')!r}")
        try:
            adapters[name] = build(name, entry)
        except KeyError as missing:
            raise CredentialsError(f"channel {name!r} lacks {missing}") from None
    return adapters


def load_credentials(path: Path) -> dict[str, Any]:
    """A credentials document from its file."""
    document = json.loads(path.read_text())
    if not isinstance(document, dict):
        raise CredentialsError(f"{path} is not a JSON object")
    return document
