#!/usr/bin/env python3
"""The structural rules of docs/architecture.md, checked so that they do not drift:

- each module imports only what docs/architecture.md allows it (the table below is that table);
  in EDMMDaemon only Device/ names the simulator;
- every module under Sources/ has a row in docs/architecture.md;
- no Swift file over 400 lines, no function over 80 lines, no line over 140 characters;
- each program's main file (the one with @main) under 100 lines.

Prints one line per problem and `structure: N problems` last; exit status 1 when there is any.
Usage: scripts/check-structure.py [repository root]
"""
import pathlib
import re
import sys

MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 80
MAX_LINE_LENGTH = 140
MAX_MAIN_LINES = 99

# Modules any target may import: the platform, the standard library's own, the test library.
SYSTEM = {"Glibc", "Dispatch", "Synchronization", "FoundationEssentials", "Testing"}

# What each module under Sources/ may import (besides SYSTEM). docs/architecture.md, "Modules".
ALLOWED = {
    "CEDMMShims": set(),
    "CEDMMSimABI": set(),
    "CSystemd": set(),
    "EDMMCore": set(),
    "EDMMSystem": {"CEDMMShims"},
    "EDMMProtocol": {"EDMMCore"},
    "EDMMKubernetes": {"CEDMMShims"},
    "EDMMConfig": {"TOMLKit", "SystemPackage"},
    "EDMMVersion": set(),
    "EDMMBuildInfo": {"EDMMVersion"},
    "SGXDevice": {"EDMMCore", "EDMMSystem"},
    "SGXKernel": {"SGXDevice", "EDMMSystem", "CEDMMShims"},
    "SGXKernelTesting": {"SGXKernel", "SGXDevice"},
    "SGXSimulator": {"SGXDevice", "EDMMCore", "EDMMSystem", "CEDMMShims"},
    "EDMMSimC": {"CEDMMSimABI", "SGXSimulator", "SGXDevice", "EDMMCore"},
    "EDMMClient": {"EDMMCore", "EDMMProtocol", "EDMMSystem", "CEDMMShims"},
    "EDMMSimHost": {"EDMMClient", "EDMMCore", "EDMMProtocol", "EDMMSystem", "SGXDevice", "SGXSimulator"},
    "EDMMDaemon": {
        "EDMMCore", "EDMMConfig", "EDMMProtocol", "EDMMSystem", "EDMMVersion", "EDMMKubernetes", "SGXDevice", "SGXKernel",
        "SGXSimulator", "CEDMMShims", "CSystemd", "Logging", "Metrics", "ServiceLifecycle", "UnixSignals",
    },
    "EDMMMetrics": {
        "EDMMDaemon", "EDMMCore", "EDMMProtocol", "EDMMConfig", "EDMMKubernetes", "Logging", "Prometheus", "NIOCore", "NIOPosix",
        "NIOHTTP1", "NIOHTTPCompression", "ServiceLifecycle",
    },
    "edmmd": {"EDMMDaemon", "EDMMMetrics", "EDMMConfig", "EDMMSystem", "EDMMBuildInfo", "ArgumentParser", "Logging", "ServiceLifecycle"},
    "edmmctl": {
        "EDMMProtocol", "EDMMClient", "EDMMConfig", "EDMMCore", "EDMMSystem", "EDMMBuildInfo", "EDMMKubernetes", "ArgumentParser",
    },
    "edmm-sim": {
        "EDMMClient", "EDMMSimHost", "EDMMProtocol", "EDMMSystem", "SGXSimulator", "SGXDevice", "EDMMCore", "CEDMMShims",
        "EDMMBuildInfo", "ArgumentParser",
    },
}

# Imports allowed in only some files of a module: (module, import) -> files (relative to the module).
NARROW = {
    ("EDMMDaemon", "SGXSimulator"): {"Device/SimulatedBackend.swift", "Device/SimulatedEPC.swift"},
}

IMPORT = re.compile(r"^\s*(?:@[\w()]+\s+)*import\s+(?:(?:struct|class|enum|protocol|func|var|typealias)\s+)?([\w]+)", re.M)
DECLARATION = re.compile(r"\b(?:func\s+[^\s(<]+|init[?!]?\s*[(<]|deinit\b|subscript\s*[(<])")


def blank_comments_and_strings(text):
    """The text with comments and string literals replaced by spaces (newlines kept), so that
    braces can be matched."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
            continue
        if text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
            continue
        m = re.match(r'(#*)("""|")', text[i:i + 16])
        if m and (m.group(1) or text[i] == '"'):
            hashes, quote = m.group(1), m.group(2)
            close, j = quote + hashes, i + len(m.group(0))
            while j < n and not text.startswith(close, j):
                if text[j] == "\\" and not hashes:
                    if text.startswith("\\(", j):  # interpolation: skip its balanced parentheses
                        j, depth = j + 2, 1
                        while j < n and depth:
                            depth += {"(": 1, ")": -1}.get(text[j], 0)
                            j += 1
                        continue
                    j += 1
                j += 1
            j = min(n, j + len(close))
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def functions(text):
    """(first line, last line, name) of every function, initializer, deinitializer and subscript
    with a body."""
    code = blank_comments_and_strings(text)
    for match in DECLARATION.finditer(code):
        j, depth = match.end(), 0
        while j < len(code):  # the body's brace: the first `{` outside parentheses and brackets
            c = code[j]
            if c in "([":
                depth += 1
            elif c in ")]":
                depth -= 1
            elif depth <= 0 and c in "{}":
                break
            j += 1
        # A requirement without a body (a protocol's) reaches another declaration first.
        if j >= len(code) or code[j] == "}" or re.search(r"\n\s*(?:func|var|let|init|case|}|@)\b", code[match.end():j]):
            continue
        depth, k = 0, j
        while k < len(code):
            depth += {"{": 1, "}": -1}.get(code[k], 0)
            if depth == 0:
                break
            k += 1
        yield code.count("\n", 0, match.start()) + 1, code.count("\n", 0, k) + 1, match.group(0).strip()


def main(root):
    problems = []
    sources = root / "Sources"
    architecture = (root / "docs/architecture.md").read_text() if (root / "docs/architecture.md").exists() else ""
    if not architecture:
        problems.append("docs/architecture.md is missing")
    for module in sorted(p.name for p in sources.iterdir() if p.is_dir()):
        if module not in ALLOWED:
            problems.append(f"Sources/{module}: a module with no rule in scripts/check-structure.py (and docs/architecture.md)")
        elif architecture and f"`{module}`" not in architecture:
            problems.append(f"Sources/{module}: no row in docs/architecture.md")
    for path in sorted(sources.rglob("*.swift")):
        module = path.relative_to(sources).parts[0]
        inner = str(path.relative_to(sources / module))
        for name in sorted(set(IMPORT.findall(path.read_text()))):
            allowed = ALLOWED.get(module, set()) | SYSTEM
            if name not in allowed:
                problems.append(f"{path}: imports {name}, which {module} may not (docs/architecture.md)")
            elif (module, name) in NARROW and inner not in NARROW[(module, name)]:
                problems.append(f"{path}: imports {name}; in {module} only {', '.join(sorted(NARROW[(module, name)]))} may")
    for folder in ["Sources", "Tests", "Plugins", "Benchmarks", "FuzzTesting"]:
        for path in sorted((root / folder).rglob("*.swift")):
            if ".build" in path.parts:
                continue
            text = path.read_text()
            lines = text.split("\n")
            if len(lines) - 1 > MAX_FILE_LINES:
                problems.append(f"{path}: {len(lines) - 1} lines, more than {MAX_FILE_LINES}")
            for number, line in enumerate(lines, 1):
                if len(line) > MAX_LINE_LENGTH:
                    problems.append(f"{path}:{number}: {len(line)} characters, more than {MAX_LINE_LENGTH}")
            for first, last, name in functions(text):
                if last - first + 1 > MAX_FUNCTION_LINES:
                    problems.append(f"{path}:{first}: {name} is {last - first + 1} lines, more than {MAX_FUNCTION_LINES}")
            if folder == "Sources" and re.search(r"^@main\b", text, re.M) and len(lines) - 1 > MAX_MAIN_LINES:
                problems.append(f"{path}: a program's main file of {len(lines) - 1} lines, more than {MAX_MAIN_LINES}")
    for problem in problems:
        print(problem)
    print(f"structure: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent)))
