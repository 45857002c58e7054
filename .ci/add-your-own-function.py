#!/usr/bin/env python3
"""Follows README's "Add your own function" to the letter for one language: writes each file the
README shows where it says (a `<!-- add-function LANG: PATH -->` line before each block), inserts
the Package.swift line, runs the README's commands, checks that they print what README says they
print, and puts the tree back as it was.

    python3 .ci/add-your-own-function.py --language swift            # in this checkout, `swift run` as written
    python3 .ci/add-your-own-function.py --language python --root DIR --chunkrelay .build/debug/chunkrelay

With --chunkrelay, `swift run chunkrelay` in a command is that executable instead (inside `swift
test`, a nested `swift run` would wait for the build lock the test run holds).
"""
import argparse
import hashlib
import json
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def section(readme):
    text = readme.split("\n## Add your own function\n", 1)[1]
    return text.split("\n## ", 1)[0]


def steps(text, language):
    pattern = re.compile(r"<!-- add-function (\w+): (.+?) -->\n```\w*\n(.*?)```\n(.*?)(?=<!-- add-function|\Z)", re.S)
    return [(target, body, after) for lang, target, body, after in pattern.findall(text) if lang == language]


def fail(message):
    print(f"FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--language", required=True)
    parser.add_argument("--root", default=str(README.parent))
    parser.add_argument("--chunkrelay")
    parser.add_argument("--keep", action="store_true", help="leave what was written in place")
    args = parser.parse_args()
    root = pathlib.Path(args.root).resolve()
    recipe = steps(section(README.read_text()), args.language)
    if not recipe:
        fail(f"README has no add-function steps for {args.language}")

    created = []
    package = root / "Package.swift"
    original_package = package.read_text() if package.exists() else None
    try:
        commands, claims, fixtures = [], [], []
        for target, body, after in recipe:
            if target == "run":
                commands += [line for line in body.splitlines() if line.strip()]
                claims += re.findall(r"`(\d+ cases?, \d+ runs?: [^`]+)`", after)
            elif target == "Package.swift targets":
                if original_package is None or "    targets: [\n" not in original_package:
                    fail(f"no `targets: [` in {package}")
                package.write_text(original_package.replace("    targets: [\n", "    targets: [\n" + body, 1))
            else:
                path = root / target
                if path.exists():
                    fail(f"{path} exists already; the recipe would overwrite it")
                top = root / pathlib.Path(target).parts[0] / pathlib.Path(target).parts[1]
                if not top.exists():
                    created.append(top)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(body)
                if "/fixtures/" in target:
                    fixtures.append(path)
        if not commands:
            fail("README gives no commands to run")

        outputs = []
        for command in commands:
            argv = shlex.split(command)
            if args.chunkrelay and argv[:3] == ["swift", "run", "chunkrelay"]:
                argv = [str(pathlib.Path(args.chunkrelay).resolve())] + argv[3:]
            print(f"$ {command}", flush=True)
            run = subprocess.run(argv, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1200)
            print(run.stdout, flush=True)
            if run.returncode != 0:
                fail(f"`{command}` exited {run.returncode}")
            outputs.append(run.stdout)

        if "--record" in commands[0] and " recorded " not in outputs[0]:
            fail("the --record run recorded nothing")
        for claim in claims:
            if claim not in outputs[-1]:
                fail(f"README says the last command prints `{claim}`; it did not")
        for fixture in fixtures:
            expect = json.loads(fixture.read_text()).get("expect") or {}
            if not expect.get("sha256") and not expect.get("error"):
                fail(f"{fixture} has no recorded expectation")
            # The Swift recipe's image is a PPM anyone can compute: the recorded digest must be its digest.
            params = json.loads(fixture.read_text()).get("params", {})
            if expect.get("contentType") == "image/x-portable-pixmap":
                side = params.get("size", 64)
                ppm = f"P6\n{side} {side}\n255\n".encode() + bytes([0, 128, 255]) * (side * side)
                if expect["sha256"] != hashlib.sha256(ppm).hexdigest() or expect.get("bytes") != len(ppm):
                    fail(f"{fixture} recorded {expect}, but the PPM README describes has sha256 {hashlib.sha256(ppm).hexdigest()}")
        print(f"README's {args.language} recipe: {len(commands)} commands and {len(fixtures)} fixture files, all as README says")
    finally:
        if not args.keep:
            for path in created:
                shutil.rmtree(path, ignore_errors=True)
            if original_package is not None and package.read_text() != original_package:
                package.write_text(original_package)


if __name__ == "__main__":
    main()
