"""CADC's `vos` command-line client against the live application.

The client finds a service through the registry: with `LOCAL_VOSPACE_WEBSERVICE=<host>` it reads
`https://<host>/reg/resource-caps`, a list of `<resource id> = <capabilities URL>` lines, and
caches it under `$HOME/.config/cadc-registry/alt-domains/<host>/`. The tests write that file
into a private HOME (the only thing a local deployment has to provide), so the client then
fetches our real VOSI capabilities over HTTPS and follows them. The application is served over
TLS with a self-signed certificate made here; `-k` tells the client to accept it (cadcutils
turns off requests' environment settings, so a private CA bundle cannot be handed to it).
Authentication is `--token`: a personal API token sent as `Authorization: Bearer`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.server import LiveServer

RESOURCE_ID = "ivo://astrocloud.local/vospace"
VOS_BASE = "vos://astrocloud.local~vospace"


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) PEM files for 127.0.0.1 and localhost, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class TLSLiveServer(LiveServer):
    """The same application over HTTPS on another loopback port."""

    def __init__(self, app, port: int, cert_file: Path, key_file: Path):
        super().__init__(app, port)
        self.url = f"https://127.0.0.1:{port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                lifespan="off", access_log=False,
                                ssl_certfile=str(cert_file), ssl_keyfile=str(key_file))
        self.server = uvicorn.Server(config)
        import threading

        self.thread = threading.Thread(target=self.server.run, daemon=True)


class VosClient:
    """Runs `vls`, `vcp`, `vmkdir`, `vmv`, `vrm` … as separate processes, as a user would."""

    def __init__(self, home: Path, server_url: str, token: str):
        self.home = home
        self.host = server_url.split("://", 1)[1]
        self.token = token
        self.bin = Path(sys.executable).parent
        self._prepare(server_url)

    def _prepare(self, server_url: str) -> None:
        config = self.home / ".config"
        registry = config / "cadc-registry" / "alt-domains" / self.host / "resource-caps"
        registry.parent.mkdir(parents=True, exist_ok=True)
        registry.write_text(f"# local AstroCloud\n{RESOURCE_ID} = {server_url}/vospace/"
                            "capabilities\n")
        # the client asks PyPI whether it is the newest version; a fresh cache answers instead
        versions = config / "vos" / "caches" / ".pypi_versions.json"
        versions.parent.mkdir(parents=True, exist_ok=True)
        versions.write_text(json.dumps({"releases": {}}))
        for cache in (versions, registry):
            os.utime(cache, (time.time(), time.time()))

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VOSPACE", "REQUESTS"))}
        env.update(HOME=str(self.home), LOCAL_VOSPACE_WEBSERVICE=self.host,
                   PYTHONWARNINGS="ignore")
        return env

    def run(self, command: str, *args: str, check: bool = True, timeout: float = 120,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run([str(self.bin / command), "-k", "--token", self.token, *args],
                                env=self.env(), capture_output=True, text=True,
                                timeout=timeout, cwd=cwd or self.home)
        if check and result.returncode != 0:
            raise AssertionError(f"{command} {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result
