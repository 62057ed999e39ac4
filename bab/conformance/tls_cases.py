"""placeholder"""


def tls_client_for(s, inner):  # type: ignore[no-untyped-def]
    return None
