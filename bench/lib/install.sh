# shellcheck shell=bash
# Installs what the selected rows compare against, when missing.  A failed
# install is recorded in TOOL_ERR[binary] and turns the rows that need that
# binary into error rows; it never stops the run.

declare -gA TOOL_ERR=()
# gotatun's CLI crate is gotatun-cli but the binary it installs is "gotatun".
GOTATUN_CRATE=${BENCH_GOTATUN_CRATE:-gotatun-cli}
GOTATUN_BIN=gotatun

# sudo resets PATH (secure_path), which drops ~/.cargo/bin.
bench_extend_path() {
	local dirs=("${CARGO_HOME:-$HOME/.cargo}/bin" /root/.cargo/bin) d home
	if [[ -n "${SUDO_USER:-}" ]]; then
		home=$(getent passwd "$SUDO_USER" | cut -d: -f6 || true)
		[[ -n "$home" ]] && dirs+=("$home/.cargo/bin")
	fi
	for d in "${dirs[@]}"; do
		[[ -d "$d" && ":$PATH:" != *":$d:"* ]] && PATH="$PATH:$d"
	done
	export PATH
}

find_gotatun_bin() {
	local b
	for b in gotatun gotatun-cli; do
		if command -v "$b" >/dev/null; then
			GOTATUN_BIN=$b
			return 0
		fi
	done
	return 1
}

# apt_install PKG...: installs with apt-get, running apt-get update once if the
# first try fails.  --no-install-recommends matters: wireguard-tools would
# otherwise pull in a kernel image.
APT_UPDATED=0
apt_install() {
	local log="$BENCH_WORK/apt-install.log" t0=$SECONDS
	log "apt-get install $* ..."
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >>"$log" 2>&1; then
		if ((APT_UPDATED)); then
			return 1
		fi
		APT_UPDATED=1
		log "apt-get install failed; running apt-get update and trying again"
		DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$log" 2>&1 || true
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >>"$log" 2>&1 ||
			return 1
	fi
	log "installed $* in $((SECONDS - t0)) s"
}

# ensure_apt BIN=PKG...
ensure_apt() {
	local spec bin pkg missing_bins=() missing_pkgs=() i
	for spec in "$@"; do
		bin=${spec%%=*} pkg=${spec#*=}
		command -v "$bin" >/dev/null && continue
		missing_bins+=("$bin") missing_pkgs+=("$pkg")
	done
	((${#missing_pkgs[@]})) || return 0
	if ((NO_INSTALL)); then
		log "missing: ${missing_bins[*]} (not installing: --no-install)"
		return 0
	fi
	if ! command -v apt-get >/dev/null; then
		for bin in "${missing_bins[@]}"; do
			TOOL_ERR[$bin]="'$bin' is not installed and there is no apt-get to install it"
		done
		return 0
	fi
	if ! apt_install "${missing_pkgs[@]}"; then
		# find out which one failed
		for i in "${!missing_pkgs[@]}"; do
			apt_install "${missing_pkgs[$i]}" ||
				TOOL_ERR[${missing_bins[$i]}]="apt-get install ${missing_pkgs[$i]} failed: $(grep -E '^E:' "$BENCH_WORK/apt-install.log" | tail -n 1)"
		done
	fi
	for bin in "${missing_bins[@]}"; do
		if [[ -z "${TOOL_ERR[$bin]:-}" ]] && ! command -v "$bin" >/dev/null; then
			TOOL_ERR[$bin]="apt-get installed the package but '$bin' is not on PATH"
		fi
	done
}

# cargo_install CRATE BIN: cargo install --locked CRATE unless BIN exists.
cargo_install() {
	local crate=$1 bin=$2 log="$BENCH_WORK/cargo-install-$1.log" t0=$SECONDS
	command -v "$bin" >/dev/null && return 0
	if ((NO_INSTALL)); then
		log "missing: $bin (not installing: --no-install)"
		return 0
	fi
	if ! command -v cargo >/dev/null; then
		TOOL_ERR[$bin]="'$bin' is not installed and cargo is not available to install crate $crate"
		return 0
	fi
	log "cargo install --locked $crate (a few minutes on 2 cores) ..."
	if ! cargo install --locked "$crate" >"$log" 2>&1; then
		TOOL_ERR[$bin]="cargo install --locked $crate failed: $(grep -E '^error' "$log" | head -n 1)"
		log "${TOOL_ERR[$bin]}"
		return 1
	fi
	log "installed $crate in $((SECONDS - t0)) s"
	hash -r
}

ensure_tools() {
	local rows=" $* " need_wg=0
	bench_extend_path
	[[ "$rows" == *" boringtun "* || "$rows" == *" gotatun "* || "$rows" == *" wireguard-go "* ]] && need_wg=1
	local apt_specs=(iperf3=iperf3)
	((need_wg)) && apt_specs+=(wg=wireguard-tools)
	[[ "$rows" == *" wireguard-go "* ]] && apt_specs+=(wireguard-go=wireguard-go)
	ensure_apt "${apt_specs[@]}"

	if [[ "$rows" == *" boringtun "* ]]; then
		cargo_install boringtun-cli boringtun-cli || true
	fi
	if [[ "$rows" == *" gotatun "* ]] && ! find_gotatun_bin; then
		if ! cargo_install "$GOTATUN_CRATE" gotatun && [[ -n "${TOOL_ERR[gotatun]:-}" ]] &&
			grep -q 'could not find' "$BENCH_WORK/cargo-install-$GOTATUN_CRATE.log" 2>/dev/null; then
			# the CLI crate was renamed: look for it
			local alt
			alt=$(cargo search gotatun 2>/dev/null | awk '$1 ~ /^gotatun.*cli/ {print $1; exit}' || true)
			if [[ -n "$alt" && "$alt" != "$GOTATUN_CRATE" ]]; then
				unset 'TOOL_ERR[gotatun]'
				cargo_install "$alt" gotatun || true
			fi
		fi
		# the crate may name its binary gotatun or gotatun-cli
		if find_gotatun_bin; then
			unset 'TOOL_ERR[gotatun]'
		fi
	fi
	return 0
}
