# Sourced by scripts/test and scripts/demo: installs the Debian/Ubuntu packages kumiki needs when
# any is missing (apt-get, as root or through sudo). Idempotent: does nothing when all are present.
kumiki_packages=(
  cmake g++ make ninja-build pkg-config
  libeigen3-dev catch2 libbenchmark-dev nlohmann-json3-dev libcli11-dev
  libopenmpi-dev openmpi-bin libsentencepiece-dev sentencepiece zlib1g-dev
  python3 python3-numpy python3-torch libopenblas0-pthread gnuplot-nox
  clang-14 libclang-rt-14-dev libomp-14-dev
)

kumiki_install_deps() {
  local missing=()
  for p in "${kumiki_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    echo "[kumiki] all ${#kumiki_packages[@]} required packages are installed"
    return 0
  fi
  echo "[kumiki] installing missing packages: ${missing[*]}"
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
