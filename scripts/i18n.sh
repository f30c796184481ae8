#!/usr/bin/env bash
# Extract every translatable message, update the Simplified Chinese catalogue, compile it.
#
#   bash scripts/i18n.sh            extract → src/astrocloud/core/locale/messages.pot,
#                                   update zh_CN/LC_MESSAGES/messages.po, compile messages.mo
#   bash scripts/i18n.sh --check    the same, then fail if a message is untranslated or fuzzy
#
# What is extracted is set in babel.cfg: _("…") in Python and templates, gettext(lang, "…") and
# ngettext(lang, "…", "…", n) in Python, gettext/ngettext in templates, and the first argument of
# the domain errors (ValidationFailed("…"), NotFound("…"), …). Python and templates call
# ngettext with different arguments, so babel.cfg gives each section its own keywords, which
# Babel reads from 2.18 on.
#
# Needs nothing but the project's virtualenv (BIN=path/to/bin to use another one).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.venv/bin}
LOCALE=src/astrocloud/core/locale
DOMAIN=messages
LANGS=(zh_CN)
CHECK=0
[ "${1:-}" = "--check" ] && CHECK=1

"$BIN/python" - <<'EOF'
import sys
import babel
version = tuple(int(p) for p in babel.__version__.split(".")[:2])
if version < (2, 18):
    sys.exit(f"scripts/i18n.sh needs Babel >= 2.18 (per-section keywords in babel.cfg), "
             f"found {babel.__version__}: {sys.executable} -m pip install -U 'babel>=2.18'")
EOF

# 1. Extract (run from the repository root: babel.cfg's patterns start with src/astrocloud/).
"$BIN/pybabel" -q extract -F babel.cfg --no-location --sort-output \
  --project AstroCloud --version "$("$BIN/python" -c 'import astrocloud; print(astrocloud.__version__)' 2>/dev/null || echo 0)" \
  --copyright-holder "AstroCloud developers" \
  -o "$LOCALE/$DOMAIN.pot" .

# 2. Update each catalogue (created when missing). No fuzzy matching: a guessed translation
#    of a changed message is worse than an untranslated one, which the check below reports.
for lang in "${LANGS[@]}"; do
  "$BIN/pybabel" -q update -i "$LOCALE/$DOMAIN.pot" -d "$LOCALE" -D "$DOMAIN" -l "$lang" \
    --init-missing --no-fuzzy-matching
done

# 3. Compile (the wheel build does the same through hatch_build.py; .mo files are not committed).
"$BIN/pybabel" compile -d "$LOCALE" -D "$DOMAIN" --statistics

# 4. Report what still needs a translator, and check the placeholders of what has one.
"$BIN/python" - "$LOCALE" "$DOMAIN" "$CHECK" "${LANGS[@]}" <<'EOF'
import re
import sys
from pathlib import Path

from babel.messages.pofile import read_po

locale_dir, domain, check, langs = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1", sys.argv[4:]
PLACEHOLDER = re.compile(r"%\((\w+)\)[sdifr]|%[sdifr%]")
problems = 0
for lang in langs:
    with (locale_dir / lang / "LC_MESSAGES" / f"{domain}.po").open("rb") as f:
        catalog = read_po(f, locale=lang)
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, (list, tuple)) else (message.id,)
        strings = message.string if isinstance(message.string, (list, tuple)) else (message.string,)
        first = ids[0]
        if message.fuzzy or not all(strings):
            problems += 1
            print(f"{lang}: untranslated{' (fuzzy)' if message.fuzzy else ''}: {first!r}")
            continue
        wanted = set(PLACEHOLDER.findall(" ".join(ids)))
        for s in strings:
            found = set(PLACEHOLDER.findall(s))
            # a plural form may leave out the count (%(num)s), but nothing else
            if found - wanted or (wanted - found) - {"num"}:
                problems += 1
                print(f"{lang}: placeholders differ: {first!r} → {s!r}")
if problems:
    print(f"{problems} message(s) need a translator's attention.")
    if check:
        sys.exit(1)
else:
    print("Every message is translated.")
EOF
