"""``bab keys``: the meters' TLS keys, pinned gateway certificates and SYM master keys (LMN-STACK.md 4, 5).

* ``bab keys generate --meter ID [--curve C] [--force]``: the meter's own ECDSA key + self-signed certificate
  into its state dir (key 0600, atomic); refused while paired.
* ``bab keys import-gateway --meter ID FILE``: pin a gateway certificate provisioned out of band (TLS is then
  required, plain SML on selector 3 refused); refused while paired.
* ``bab keys show [--meter ID] [--json]``: fingerprints, curves, validity, sources, paired state, served
  selectors, file-mode problems. Never prints key material.
* ``bab keys set-master-key --meter ID FILE|-``: the meter master key MK from a file or stdin (never from the
  command line, never logged); refused while paired.

Each ``keys_*`` function takes the loaded :class:`bab.config.Config` and returns an exit code;
:func:`add_keys_parser` builds the argparse subcommands (``bab.cli`` adds one line). Run it as the service
user, or as root: files written as root are handed to the owner of the state directory.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import IO, Any, BinaryIO

from bab.schema import ConfigError
from bab.security import MeterSecurity, SecurityError, security_for
from bab.sym.errors import SymError
from bab.tls import keys
from bab.tls.keys import Curve, KeyMaterialError

_ERRORS = (SecurityError, KeyMaterialError, SymError, OSError)


def _find(config: Any, meter_id: str) -> Any:
    for m in config.meters:
        if str(m.id) == meter_id:
            return m
    known = ", ".join(str(m.id) for m in config.meters)
    raise SecurityError(f"meter {meter_id} is not in {config.source} (configured: {known})")


def _security(config: Any, meter_id: str) -> MeterSecurity:
    return security_for(config, _find(config, meter_id))


def _hand_over(sec: MeterSecurity) -> None:
    """Running as root: give what we wrote to the owner of the configured state directory (the service user)."""
    if os.geteuid() != 0:
        return
    try:
        st = sec.state_dir.parent.parent.stat()  # <state_dir>/meters/<meter id>
    except FileNotFoundError:
        return
    if st.st_uid == 0:
        return
    for path in [sec.state_dir.parent, sec.state_dir, sec.tls_dir, sec.key_path, sec.cert_path,
                 sec.gateway_cert_path, sec.store.path.parent, sec.store.path]:
        with contextlib.suppress(FileNotFoundError):
            os.chown(path, st.st_uid, st.st_gid)


def keys_generate(config: Any, meter_id: str, curve: str | None = None, *, force: bool = False,
                  out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    try:
        sec = _security(config, meter_id)
        _, cert = sec.generate_identity(Curve.parse(curve) if curve else None, force=force)
        _hand_over(sec)
    except _ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    info = keys.describe_certificate(cert)
    print(f"{meter_id}: new TLS key on {info.curve_name}, certificate {info.fingerprint_sha256}", file=out)
    print(f"  key {sec.key_path} (0600), certificate {sec.cert_path}", file=out)
    return 0


def keys_import_gateway(config: Any, meter_id: str, file: str, *, out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    try:
        sec = _security(config, meter_id)
        cert = keys.load_certificate_file(file)
        fp = sec.import_gateway_certificate(cert)
        _hand_over(sec)
    except _ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{meter_id}: gateway certificate {fp} pinned; TLS (selector 1) is now required", file=out)
    return 0


def keys_set_master_key(config: Any, meter_id: str, source: str, *, stdin: BinaryIO | None = None,
                        out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    try:
        sec = _security(config, meter_id)
        sec.set_master_key(source, stdin)
        _hand_over(sec)
    except _ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{meter_id}: master key stored ({sec.store.path}, 0600); the meter can be paired on selector 6", file=out)
    return 0


def keys_show(config: Any, meter_id: str | None = None, *, as_json: bool = False, out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    try:
        meters = [_find(config, meter_id)] if meter_id else list(config.meters)
        infos = [security_for(config, m).describe() for m in meters]
    except _ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if as_json:
        json.dump(infos, out, indent=1)
        print(file=out)
        return 0
    for info in infos:
        print(f"meter {info['meter']} (server ID {info['server_id']})", file=out)
        paired = "yes" if info["paired"] else "no"
        print(f"  master key: {info['master_key']}; paired: {paired}; SYM counter: {info['sym_counter']}", file=out)
        for label, key in (("own certificate", "own_certificate"), ("gateway certificate", "gateway_certificate")):
            cert = info.get(key)
            if cert is None:
                err = info.get(key.split("_")[0] + "_error")
                print(f"  {label}: {'error: ' + err if err else 'none'}", file=out)
                continue
            print(f"  {label} ({cert['source']}): CN={cert['subject']} {cert['curve']}", file=out)
            print(f"    SHA-256 {cert['fingerprint_sha256']}", file=out)
            print(f"    valid {cert['not_before']} .. {cert['not_after']}", file=out)
        print(f"  certificate dates: {info['validity_policy']}; serving selectors: "
              f"{', '.join(map(str, info['selectors'])) or 'none'}", file=out)
        for problem in info.get("problems", []):
            print(f"  PROBLEM: {problem}", file=out)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from bab import config as config_mod

    try:
        cfg = config_mod.load(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 78
    action = args.keys_command
    if action == "generate":
        return keys_generate(cfg, args.meter, args.curve, force=args.force)
    if action == "import-gateway":
        return keys_import_gateway(cfg, args.meter, args.file)
    if action == "set-master-key":
        return keys_set_master_key(cfg, args.meter, args.source)
    return keys_show(cfg, args.meter, as_json=args.json)


def add_keys_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``bab keys ...`` to the ``bab`` command's subparsers."""
    p = subparsers.add_parser("keys", help="meter TLS keys, gateway certificates and master keys")
    p.add_argument("--config", "-c", default=os.environ.get("BAB_CONFIG", "/etc/bab/bab.yaml"))
    sub = p.add_subparsers(dest="keys_command", required=True)
    gen = sub.add_parser("generate", help="generate the meter's TLS key and self-signed certificate")
    gen.add_argument("--meter", required=True, help="meter ID as in the config")
    gen.add_argument("--curve", choices=[c.value for c in Curve], help="default: the meter's tls.curve")
    gen.add_argument("--force", action="store_true", help="replace an existing key")
    imp = sub.add_parser("import-gateway", help="pin a gateway certificate (PEM/DER file)")
    imp.add_argument("--meter", required=True)
    imp.add_argument("file")
    show = sub.add_parser("show", help="certificates, fingerprints, paired state")
    show.add_argument("--meter")
    show.add_argument("--json", action="store_true")
    mk = sub.add_parser("set-master-key", help="store the meter master key MK (from FILE, or - for stdin)")
    mk.add_argument("--meter", required=True)
    mk.add_argument("source", metavar="FILE|-", help="16 raw bytes or 32 hex digits; never on the command line")
    p.set_defaults(func=cmd_keys)
    return p


__all__ = ["add_keys_parser", "cmd_keys", "keys_generate", "keys_import_gateway", "keys_set_master_key", "keys_show"]


def _main(argv: list[str] | None = None) -> int:  # pragma: no cover - `python -m bab.keys_cli` for testing
    parser = argparse.ArgumentParser(prog="bab")
    add_keys_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main())
