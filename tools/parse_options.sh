#!/usr/bin/env bash
# Kaldi-style option parsing for recipe scripts: source it after declaring defaults.
#   stage=0; nj=2
#   . tools/parse_options.sh
# turns "--stage 3 --nj 4 --exp-root x" into stage=3 nj=4 exp_root=x (dashes in names become
# underscores). Only variables that already exist may be set; "--name=value" works too;
# "--help" prints the variables the caller declared in $help_message if set. The remaining
# positional arguments are left in "$@".
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      echo "${help_message:-usage: $0 [--option value] ...}" >&2
      exit 0 ;;
    --*=*)
      __name="${1%%=*}"; __value="${1#*=}"; shift ;;
    --*)
      if [ $# -lt 2 ]; then echo "$0: option $1 needs a value" >&2; exit 1; fi
      __name="$1"; __value="$2"; shift 2 ;;
    *) break ;;
  esac
  __name="${__name#--}"; __name="${__name//-/_}"
  if [ -z "${!__name+x}" ]; then
    echo "$0: unknown option --${__name} (no variable '${__name}' declared)" >&2
    exit 1
  fi
  printf -v "$__name" '%s' "$__value"
done
unset __name __value
true
