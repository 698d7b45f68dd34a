"""the legitimate did:web users' host of `python -m bench abuse`: real TLS on loopback.

a did:web document lives at `https://<host>/.well-known/did.json`, and the resolver
insists on verified TLS and a public address. the bench makes a CA of its own and
one certificate naming every host it will use (`WEB_HOSTS` of them, each a registrable
domain of its own, as people's own domains are); the API process trusts that CA
through `SSL_CERT_FILE` (httpx reads it), its DNS stand-in answers the hosts with
`WEB_STANDIN`, and its network backend routes that address here. so the fetch is the
production one, TLS handshake and certificate check included.
"""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path
from typing import Final

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.abuse.people import Person
from bench.loopback.http import LoopbackHttpServer

WEB_HOSTS: Final = 2_000  # names in the certificate: first-time users over a full run


def web_host(number: int, suffix: str) -> str:
    return f"bench-web-{number}.{suffix}"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_certificates(directory: Path, suffix: str) -> tuple[Path, Path, Path]:
    """(CA certificate, host certificate, host key) written to `directory`."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("plyr-recs bench CA"))
        .issuer_name(_name("plyr-recs bench CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName(web_host(n, suffix)) for n in range(WEB_HOSTS)]
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(web_host(0, suffix)))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.pem", directory / "host.pem", directory / "host.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


class WebDidHost(LoopbackHttpServer):
    """every legitimate did:web user's `/.well-known/did.json`, by the request's Host."""

    def __init__(self, directory: Path, suffix: str) -> None:
        self.suffix = suffix
        self.ca_path, cert, key = make_certificates(directory, suffix)
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(cert, key)
        self.documents: dict[str, dict[str, object]] = {}
        self.requests = 0
        self.issued = 0

    def new_person(self, address_number: int) -> Person:
        """a did:web user on a host of their own, published here."""
        if self.issued >= WEB_HOSTS:
            raise RuntimeError(f"the bench's certificate names {WEB_HOSTS} did:web hosts")
        host = web_host(self.issued, self.suffix)
        self.issued += 1
        person = Person.new(address_number, did=f"did:web:{host}")
        self.documents[host] = person.document()
        return person

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/.well-known/did.json", self._answer)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        document = self.documents.get(request.host.split(":")[0])
        if document is None:
            return web.json_response({"message": "not found"}, status=404)
        return web.json_response(document)

    async def start(self) -> None:
        app = web.Application()
        self.add_routes(app)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self._context)
        await site.start()
        self.port = self._runner.addresses[0][1]
