#!/usr/bin/env python3
"""A manual page (mdoc) for one of our programs, from what swift-argument-parser knows of it.

    manpage.py PROGRAM SECTION DATE VERSION [SEE_ALSO...] > PAGE
    e.g. manpage.py .build/release/edmmctl 1 2026-11-25 0.1.0 edmmd.8 edmmd.toml.5

It runs `PROGRAM --experimental-dump-help` and writes NAME, SYNOPSIS, DESCRIPTION (the command's
discussion), OPTIONS, COMMANDS (every visible subcommand with its own options), then one section
per capitalised heading of the discussion (EXIT STATUS, FILES, EXAMPLES, ...), and SEE ALSO.
(swift-argument-parser's generate-manual leaves blank lines groff warns about, lists the implicit
`help` command, and replaces our EXIT STATUS with a generic one.)
"""
import datetime
import json
import re
import subprocess
import sys

SECTION_ORDER = ["ENVIRONMENT", "FILES", "EXIT STATUS", "EXAMPLES"]


def text(line):
    """A line of running text: backslashes escaped, a leading . or ' made harmless."""
    line = line.replace("\\", "\\e")
    return "\\&" + line if line[:1] in (".", "'") else line


def word(value):
    """An argument of a macro line."""
    value = value.replace("\\", "\\e").replace('"', "\\(dq")
    return f'"{value}"' if (" " in value or value == "") else value


def is_heading(line):
    return bool(re.fullmatch(r"[A-Z][A-Z ]+[A-Z]", line.strip()))


def split_discussion(discussion):
    """The body as mdoc lines (paragraphs, and indented lines as literal displays), and the
    (heading, lines) blocks under capitalised headings."""
    body, sections = [], []
    for block in (discussion or "").split("\n\n"):
        lines = block.split("\n")
        if is_heading(lines[0]):
            sections.append((lines[0].strip(), dedent(lines[1:])))
        elif sections and block.startswith(" "):
            sections[-1][1].extend([""] + dedent(lines))   # the heading's block goes on
        elif block.strip():
            body.append(".Pp")
            group = []
            for line in lines + [None]:
                indented = line is not None and line.startswith(" ")
                if group and (line is None or indented != group[0].startswith(" ")):
                    body += literal(dedent(group)) if group[0].startswith(" ") else [text(" ".join(l.strip() for l in group))]
                    group = []
                if line is not None:
                    group.append(line)
    return body[1:], sections


def dedent(lines):
    indent = min((len(l) - len(l.lstrip()) for l in lines if l.strip()), default=0)
    return [l[indent:] for l in lines]


def visible(arguments, skip=()):
    return [a for a in arguments or [] if a.get("shouldDisplay", True) and name_of(a) and name_of(a) not in skip]


def name_of(argument):
    preferred = argument.get("preferredName")
    return preferred["name"] if preferred else argument.get("valueName", "")


def flag_words(argument):
    """mdoc words naming an argument: Fl -socket Ar path, Fl h , Fl -help, Ar enclave."""
    if argument["kind"] == "positional":
        words = ["Ar", argument.get("valueName", "value")]
    else:
        # mdoc's Fl adds one dash: --socket is "Fl -socket", -h is "Fl h".
        names = ["Fl " + ("-" if n["kind"] == "long" else "") + n["name"] for n in argument.get("names", [])]
        words = [" , ".join(names)]
        if argument["kind"] == "option":
            words += ["Ar", word(argument.get("valueName", "value"))]
    if argument.get("isRepeating"):
        words.append("...")
    return words


def argument_item(argument):
    lines = [".It " + " ".join(flag_words(argument))]
    description = argument.get("abstract", "")
    values = argument.get("allValues")
    if values:
        description += " One of: " + ", ".join(values) + "."
    default = argument.get("defaultValue")
    if default not in (None, "") and argument["kind"] != "flag" and "default" not in description:
        description += f" Default: {default}."
    lines.append(text(description.strip()))
    return lines


def option_list(arguments):
    if not arguments:
        return []
    out = [".Bl -tag -width Ds"]
    for argument in arguments:
        out += argument_item(argument)
    return out + [".El"]


def synopsis_words(argument):
    """An argument in a synopsis, bracketed when optional (Oo/Oc: brackets that do not nest)."""
    words = " ".join(flag_words(argument))
    return f"Oo {words} Oc" if argument.get("isOptional") else words


def literal(lines):
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    while lines and not lines[0].strip():
        lines = lines[1:]
    return [".Bd -literal -offset indent"] + [text(l) for l in lines] + [".Ed"]


def commands(command, path, skip):
    """COMMANDS: each visible subcommand (but help), depth first, with the options it adds."""
    out = []
    for sub in command.get("subcommands") or []:
        if not sub.get("shouldDisplay", True) or sub["commandName"] == "help":
            continue
        names = path + [sub["commandName"]]
        own = visible(sub.get("arguments"), skip)
        if not sub.get("subcommands"):
            out.append(".Ss " + " ".join(["Nm", names[0]] + [f"Cm {n}" for n in names[1:]] + [synopsis_words(a) for a in own]))
            if sub.get("abstract"):
                out.append(text(sub["abstract"]))
            body, sections = split_discussion(sub.get("discussion"))
            out += ([".Pp"] + body) if body else []
            for heading, lines in sections:
                out += [".Pp", ".Sy " + word(heading.capitalize())] + literal(lines)
            if own:
                out += [".Pp"] + option_list(own)
        out += commands(sub, names, skip)
    return out


def page(program, section, date, version, see_also):
    dump = json.loads(subprocess.run([program, "--experimental-dump-help"], check=True, capture_output=True, text=True).stdout)
    command = dump["command"]
    name = command["commandName"]
    root_arguments = visible(command.get("arguments"))
    body, sections = split_discussion(command.get("discussion"))
    day = datetime.date.fromisoformat(date)
    out = [
        f".Dd {day.strftime('%B')} {day.day}, {day.year}",
        f".Dt {name.upper()} {section}",
        f".Os edmmd {version}",
        ".Sh NAME",
        f".Nm {name}",
        ".Nd " + text(command.get("abstract", "").rstrip(".")),
        ".Sh SYNOPSIS",
        f".Nm {name}",
    ]
    out += ["." + synopsis_words(a) for a in root_arguments if name_of(a) not in ("help", "version")]
    has_commands = any(s.get("shouldDisplay", True) and s["commandName"] != "help" for s in command.get("subcommands") or [])
    if has_commands:
        out += [".Ar command", ".Op Ar argument ..."]
    out += [".Sh DESCRIPTION"] + (body or [text(command.get("abstract", ""))])
    out += [".Sh OPTIONS"] + option_list(root_arguments)
    if has_commands:
        skip = {name_of(a) for a in root_arguments} | {"help", "version"}
        out += [".Sh COMMANDS"] + commands(command, [name], skip)
    known = [s for s in sections if s[0] in SECTION_ORDER]
    known.sort(key=lambda s: SECTION_ORDER.index(s[0]))
    for heading, lines in [s for s in sections if s[0] not in SECTION_ORDER] + known:
        out += [".Sh " + heading] + literal(lines)
    if see_also:
        out.append(".Sh SEE ALSO")
        for i, reference in enumerate(see_also):
            page_name, page_section = reference.rsplit(".", 1)
            out.append(f".Xr {page_name} {page_section}" + (" ," if i < len(see_also) - 1 else ""))
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    sys.stdout.write(page(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]))
