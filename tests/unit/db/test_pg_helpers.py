"""Pure parts of the embedded PostgreSQL manager (compliance_tools.pg): no server started."""

from __future__ import annotations

import struct

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from psycopg.conninfo import conninfo_to_dict

from compliance_tools.pg import PgEndpoint, _error_response, self_signed_certificate


def test_endpoint_dsn_requires_tls_and_defaults_to_the_superuser() -> None:
    # Given an embedded endpoint
    endpoint = PgEndpoint(host="127.0.0.1", port=5433)

    # When conninfo strings are made for the superuser and for another user
    owner = conninfo_to_dict(endpoint.dsn("compliance"))
    app = conninfo_to_dict(endpoint.dsn("compliance", user="app", password="pw"))

    # Then both ask for TLS and name the right database and user
    assert owner == {
        "host": "127.0.0.1",
        "port": "5433",
        "dbname": "compliance",
        "user": "postgres",
        "sslmode": "require",
    }
    assert app["user"] == "app" and app["password"] == "pw" and app["sslmode"] == "require"


def test_endpoint_from_url_keeps_credentials_and_options() -> None:
    # Given an external server URL
    url = "postgresql://admin:s3cret@db.example:6543/main?sslmode=verify-full&connect_timeout=3"

    # When it is parsed
    endpoint = PgEndpoint.from_url(url)

    # Then the admin credentials serve the superuser role, other options are kept, the password is hidden
    assert (endpoint.host, endpoint.port, endpoint.superuser, endpoint.dbname) == (
        "db.example",
        6543,
        "admin",
        "main",
    )
    assert endpoint.sslmode == "verify-full"
    dsn = conninfo_to_dict(endpoint.dsn("other"))
    assert dsn["password"] == "s3cret" and dsn["connect_timeout"] == "3" and dsn["dbname"] == "other"
    assert "s3cret" not in repr(endpoint)
    assert "s3cret" not in endpoint.url()
    # Another user's connection never inherits the admin password.
    assert "password" not in conninfo_to_dict(endpoint.dsn("other", user="app"))


def test_endpoint_from_url_defaults_to_tls() -> None:
    assert PgEndpoint.from_url("postgresql://u@h/db").sslmode == "require"


def test_self_signed_certificate_covers_localhost() -> None:
    # Given / When a certificate is generated
    cert_pem, key_pem = self_signed_certificate()

    # Then it names localhost and 127.0.0.1 and matches its EC key
    cert = x509.load_pem_x509_certificate(cert_pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    key = load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]


def test_plaintext_clients_get_a_postgres_error_response() -> None:
    # Given / When the TLS front refuses a plaintext client
    message = _error_response("TLS is required")

    # Then it is a well-formed FATAL ErrorResponse with SQLSTATE 28000
    assert message[:1] == b"E"
    (length,) = struct.unpack("!I", message[1:5])
    assert length == len(message) - 1
    assert b"C28000\x00" in message and b"MTLS is required\x00" in message
