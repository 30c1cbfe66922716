"""Genuinely signed C2PA test media, made at test time (a helper of the acquisition tests; no tests here).

:func:`signed_mp4` embeds a C2PA manifest with a training-mining assertion into a copy of an MP4 with
c2pa-python (``c2pa``), signed ES256 by an end-entity certificate that a throwaway CA issued, both made with
``cryptography``. No timestamp authority and no network: the signature is valid, the signer is untrusted
(``signingCredential.untrusted``), and readers still return the manifest store.

Needs the ``c2pa`` extra and ``cryptography`` (c2pa-python depends on it); callers skip when either is missing.
"""

from __future__ import annotations

import datetime
import functools
import struct
from pathlib import Path

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: The ISO BMFF ``uuid`` box user type of a C2PA manifest store (C2PA spec, "Embedding manifests into
#: BMFF-based assets"); c2pa-rs writes the store in a top-level ``uuid`` box with it.
C2PA_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")

TRAINING_MINING = "c2pa.training-mining"
CAWG_TRAINING_MINING = "cawg.training-mining"

_ORG = "clipfactory tests"
_DIGITAL_CREATION = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCreation"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
        ]
    )


def _key_usage(*, signing: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signing,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not signing,
        crl_sign=not signing,
        encipher_only=False,
        decipher_only=False,
    )


@functools.cache
def signing_credentials() -> tuple[bytes, bytes]:
    """``(chain PEM, private key PEM)``: a P-256 end-entity certificate for C2PA signing, then its CA.

    The end-entity certificate meets the C2PA certificate profile that c2pa-rs checks before signing: issued
    by another certificate (not self-signed), ``digitalSignature`` key usage, an extended key usage
    (``emailProtection``), ``CA:FALSE``, subject and authority key identifiers. Made once per process.
    """
    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("clipfactory test CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signing=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("clipfactory test signer"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signing=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    chain = leaf.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return chain, key_pem


def training_mining_manifest(entries: dict[str, str], label: str = TRAINING_MINING) -> dict:
    """A manifest definition: a ``c2pa.created`` action and one training-mining assertion.

    ``entries`` maps an entry name to its ``use`` (``allowed``, ``notAllowed`` or ``constrained``). A name
    without a namespace takes the label's (``ai_training`` under ``cawg.training-mining`` is
    ``cawg.ai_training``).
    """
    namespace = label.split(".", 1)[0]
    data: dict[str, dict[str, str]] = {}
    for name, use in entries.items():
        entry = {"use": use}
        if use == "constrained":
            entry["constraint_info"] = "https://example.org/clipfactory-tests/terms"
        data[name if "." in name else f"{namespace}.{name}"] = entry
    return {
        "claim_generator_info": [{"name": "clipfactory-tests", "version": "0"}],
        "title": "signed.mp4",
        "format": "video/mp4",
        "assertions": [
            # c2pa-rs refuses to sign a claim whose first action is not c2pa.created (or c2pa.opened).
            {
                "label": "c2pa.actions.v2",
                "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": _DIGITAL_CREATION}]},
            },
            {"label": label, "data": {"entries": data}},
        ],
    }


def signed_mp4(src: Path, dst: Path, entries: dict[str, str], *, label: str = TRAINING_MINING) -> Path:
    """Copy the MP4 ``src`` to ``dst`` with an embedded, signed C2PA manifest stating ``entries``.

    Signs with c2pa-python's built-in ES256 signer (``Signer.from_info``) from the PEM chain and key of
    :func:`signing_credentials`, with no timestamp authority. Returns ``dst``.
    """
    chain, key_pem = signing_credentials()
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, key_pem, None)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with (
        c2pa.Signer.from_info(info) as signer,
        c2pa.Builder(training_mining_manifest(entries, label)) as builder,
        open(src, "rb") as source,
        open(dst, "w+b") as dest,
    ):
        builder.sign(signer, "video/mp4", source, dest)
    return dst


def top_level_boxes(path: Path) -> list[tuple[str, int, int, bytes | None]]:
    """The top-level ISO BMFF boxes of a file: ``(type, offset, size, uuid user type or None)``."""
    out = []
    with open(path, "rb") as fh:
        end = fh.seek(0, 2)
        offset = 0
        while offset + 8 <= end:
            fh.seek(offset)
            size, kind = struct.unpack(">I4s", fh.read(8))
            header = 8
            if size == 1:
                (size,) = struct.unpack(">Q", fh.read(8))
                header = 16
            elif size == 0:
                size = end - offset
            user_type = fh.read(16) if kind == b"uuid" else None
            out.append((kind.decode("latin-1"), offset, size, user_type))
            if size < header:
                break
            offset += size
    return out
