# Flag parsing shared by the bench shell scripts: `--name value` pairs into shell variables.
#
#   bench_flags SCRIPT HELP_LINES "--flag=VAR ..." "$@"
#
# Sets VAR to the value of each --flag given; -h/--help prints the script's header lines
# HELP_LINES (a sed range such as 2,10p) and exits 0; an unknown flag, or one without a value,
# is an error naming the script (exit 2).
bench_flags() {
  local script="$1" help="$2" spec="$3"
  shift 3
  while [ $# -gt 0 ]; do
    if [ "$1" = -h ] || [ "$1" = --help ]; then sed -n "$help" "$0"; exit 0; fi
    local var="" pair
    for pair in $spec; do
      if [ "${pair%%=*}" = "$1" ]; then var="${pair#*=}"; fi
    done
    if [ -z "$var" ] || [ $# -lt 2 ]; then echo "$script: unknown argument $1, or no value after it" >&2; exit 2; fi
    printf -v "$var" '%s' "$2"
    shift 2
  done
}
