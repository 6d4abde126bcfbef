"""X.509 for the station (pure: keys, time and serial numbers come in as arguments).

* The station CA: a self-signed P-256 certificate; only the station holds its key.
* A participant's certificate: the station signs the participant's CSR (P-256 only),
  copying only the DNS/IP subject alternative names, with subject key identifier (SKI)
  and authority key identifier (AKI = the CA's SKI).
* The participant id is the IDS connector id ``SKI:keyid:AKI``: each identifier as
  upper-case hex pairs joined by colons (IDS-G Connector_Identities; idscp2-jvm builds
  it the same way).
* ``transportCertsSha256`` values are the SHA-256 of the DER certificate, lower-case hex
  without separators (omejdn-daps, idscp2-jvm).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..protocol.errors import echo
from ..errors import IdentityError

PARTICIPANT_ID_RE = re.compile(r"^(?:[0-9A-F]{2}:){19}[0-9A-F]{2}:keyid:(?:[0-9A-F]{2}:){19}[0-9A-F]{2}$")
MAX_SANS = 10
MAX_CSR_BYTES = 16 * 1024


class CertificateError(IdentityError, ValueError):
    """A CSR or certificate is unusable; the message names the problem."""


def colon_hex(data: bytes) -> str:
    return ":".join(f"{b:02X}" for b in data)


def is_participant_id(value: object) -> bool:
    return isinstance(value, str) and PARTICIPANT_ID_RE.match(value) is not None


def participant_id(cert: x509.Certificate) -> str:
    """``SKI:keyid:AKI`` of a participant certificate."""
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        raise CertificateError("the certificate lacks a subject or authority key identifier") from None
    if aki is None or len(ski) != 20 or len(aki) != 20:
        raise CertificateError("the certificate's key identifiers are not 20-byte SHA-1 identifiers")
    return f"{colon_hex(ski)}:keyid:{colon_hex(aki)}"


def cert_sha256(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def public_key_sha256(key: ec.EllipticCurvePublicKey) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def load_certificate(pem: bytes | str) -> x509.Certificate:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise CertificateError("not a PEM certificate") from None


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _name(common_name: str, organisation: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64] or "participant")]
    if organisation:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation[:64]))
    return x509.Name(attrs)


def make_ca(key: ec.EllipticCurvePrivateKey, name: str, *, now: dt.datetime, days: int = 3650,
            serial: int) -> x509.Certificate:
    public = key.public_key()
    ski = x509.SubjectKeyIdentifier.from_public_key(public)
    subject = _name(f"{name} CA", name)
    return (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(public).serial_number(serial)
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )


def subject_alt_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for host in hosts:
        host = host.strip().strip("[]")
        if not host:
            continue
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            out.append(x509.DNSName(host))
    return out


def make_csr(key: ec.EllipticCurvePrivateKey, organisation: str, hosts: Iterable[str] = ()) -> bytes:
    """A PEM CSR naming the organisation, with the node's host names as subject alternative names
    (so that the certificate can also serve as the node's TLS certificate under mTLS)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(_name(organisation, organisation))
    sans = subject_alt_names(hosts)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def load_csr(pem: str) -> x509.CertificateSigningRequest:
    """Parse and check a participant CSR: PEM, at most 16 KiB, self-signature valid, P-256 key."""
    if len(pem) > MAX_CSR_BYTES:
        raise CertificateError(f"the CSR is over {MAX_CSR_BYTES} bytes")
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except ValueError:
        raise CertificateError("the CSR is not a PEM certificate signing request") from None
    try:
        valid = csr.is_signature_valid
    except Exception:  # noqa: BLE001 - unsupported algorithm and the like
        valid = False
    if not valid:
        raise CertificateError("the CSR's signature does not verify")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise CertificateError("the CSR's key must be an EC P-256 key")
    return csr


def sign_csr(csr: x509.CertificateSigningRequest, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
             *, organisation: str, now: dt.datetime, serial: int, days: int = 365) -> x509.Certificate:
    """The participant certificate for a checked CSR. The subject is the organisation name the
    station recorded (not what the CSR says); only DNS and IP alternative names are copied."""
    sans: list[x509.GeneralName] = []
    try:
        ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [n for n in ext if isinstance(n, (x509.DNSName, x509.IPAddress))]
    except x509.ExtensionNotFound:
        pass
    if len(sans) > MAX_SANS:
        raise CertificateError(f"the CSR names more than {MAX_SANS} alternative names")
    for n in sans:
        if isinstance(n, x509.DNSName) and not re.fullmatch(r"[A-Za-z0-9*]([A-Za-z0-9.\-]{0,251}[A-Za-z0-9])?", n.value):
            raise CertificateError(f"the CSR's DNS name {echo(n.value)} is not a host name")
    public = csr.public_key()
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(organisation, organisation)).issuer_name(ca_cert.subject)
        .public_key(public).serial_number(serial)
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def check_issued(cert: x509.Certificate, ca_cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> None:
    """The certificate was signed by the CA (and, if given, certifies `key`). Raises CertificateError."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, Exception) as exc:  # InvalidSignature has no common base
        raise CertificateError(f"the certificate was not issued by the station CA ({type(exc).__name__})") from None
    if key is not None and public_key_sha256(cert.public_key()) != public_key_sha256(key.public_key()):
        raise CertificateError("the certificate does not certify this node's key")
