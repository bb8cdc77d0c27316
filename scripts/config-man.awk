# edmmd.toml(5) from config/edmmd.toml, the documented default configuration: every section and
# key with its default value and the comment above it (a comment after a key, on its line, goes
# in parentheses beside it). A comment documents the keys that follow it up to the next comment;
# a commented-out TOML line (an example such as "# [quota.uid_overrides]") becomes a literal
# display. A line of another shape is an error, so the page cannot silently miss a key.
#   awk -v version=0.1.0 -v date=2026-11-25 -f scripts/config-man.awk config/edmmd.toml
# Output: mdoc(7).

function text_line(s) {  # a line of running text: backslashes, and a leading . or '
    gsub(/\\/, "\\e", s)
    return s ~ /^[.']/ ? "\\&" s : s
}
function argument(s) {  # a word on a macro line: quotes too
    gsub(/\\/, "\\e", s); gsub(/"/, "\\(dq", s)
    return s
}
function flush(    i) {  # the keys waiting for their comment, then the comment, then examples
    if (n_keys) {
        if (!in_list) { print ".Bl -tag -width Ds"; in_list = 1 }
        for (i = 1; i <= n_keys; i++) print keys[i]
        for (i = 1; i <= n_text; i++) print text_line(text[i])
        n_keys = 0; n_text = 0
    }
    if (n_example) {
        if (in_list) { print ".El"; in_list = 0 }
        if (n_text) { print ".Pp"; for (i = 1; i <= n_text; i++) print text_line(text[i]); n_text = 0 }
        print ".Bd -literal -offset indent"
        for (i = 1; i <= n_example; i++) print text_line(example[i])
        print ".Ed"
        n_example = 0
    }
}
function end_section() { flush(); if (in_list) { print ".El"; in_list = 0 } }

BEGIN {
    print ".Dd " date
    print ".Dt EDMMD.TOML 5"
    print ".Os edmmd " version
    print ".Sh NAME"
    print ".Nm edmmd.toml"
    print ".Nd configuration of edmmd, the SGX2 enclave memory daemon"
    print ".Sh SYNOPSIS"
    print ".Pa /etc/edmmd/edmmd.toml"
    print ".Sh DESCRIPTION"
    header = 1
}

# Before the first section: the file's own introduction (but its first line), paragraph by paragraph.
header && /^#/ {
    line = $0; sub(/^# ?/, "", line)
    if (NR == 1) next
    if (line == "") { if (paragraph) { print ".Pp"; paragraph = 0 } }
    else { print text_line(line); paragraph = 1 }
    next
}
header && /^\[/ { header = 0; print ".Sh SECTIONS AND KEYS" }

/^\[[a-z_.]+\]$/ { end_section(); print ".Ss " $0; next }
/^#/ {
    line = $0; sub(/^# ?/, "", line)
    if (line ~ /^(\[[a-z_.]+\]|[0-9a-z_]+ = .*)$/) { example[++n_example] = line; next }
    if (n_keys || n_example) flush()
    text[++n_text] = line
    next
}
/^[a-z_]+ = / {
    if (n_example) flush()
    value = $0; sub(/^[a-z_]+ = /, "", value)
    note = ""
    if (match(value, /[ \t]+# /)) { note = substr(value, RSTART + RLENGTH); value = substr(value, 1, RSTART - 1) }
    keys[++n_keys] = ".It Ic " $1 " No = Li " argument(value) (note == "" ? "" : " Pq " argument(note))
    documented++
    next
}
/^$/ { next }
{ printf "config-man.awk: %s:%d: cannot document this line: %s\n", FILENAME, NR, $0 > "/dev/stderr"; failed = 1; exit 1 }

END {
    if (failed) exit 1
    if (!documented) { print "config-man.awk: no keys found" > "/dev/stderr"; exit 1 }
    end_section()
    print ".Sh FILES"
    print ".Bl -tag -width Ds"
    print ".It Pa /etc/edmmd/edmmd.toml"
    print "What edmmd reads at start and on SIGHUP"
    print ".Pq Nm systemctl Cm reload Ar edmmd ."
    print "A file with errors keeps the running configuration; the journal says why, with file:line."
    print ".El"
    print ".Sh SEE ALSO"
    print ".Xr edmmctl 1 ,"
    print ".Xr edmm-sim 1 ,"
    print ".Xr edmmd 8"
}
