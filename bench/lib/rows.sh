# shellcheck shell=bash
# Row set-up functions other than mcvpn (that one is in mcvpn.sh).  Each is
# called as run_<row>_row CLIENT_NS HUB_NS TARGET_NS ROW_DIR; see the
# interface comment in mcvpn.sh.

# veth: plain routed path client -> hub -> target, no tunnel: the ceiling.
run_veth_row() {
	row_version "kernel $(uname -r)"
	ROW_TARGET_ADDR=$BENCH_TARGET_IP
}

# Overlay addresses of the peer-to-peer tunnels (inside the namespaces only).
PEER_A_OVERLAY=198.19.0.1
PEER_B_OVERLAY=198.19.0.2
PEER_PORT=51820
PEER_MTU=1420

run_boringtun_row() {
	require_tool boringtun-cli
	row_version "$(boringtun-cli --version 2>&1 | head -n 1)"
	# root without a login session: must not try to drop privileges
	peer_row bt "$1" "$3" boringtun-cli -f --disable-drop-privileges -v error
}

run_gotatun_row() {
	require_tool "$GOTATUN_BIN"
	row_version "$("$GOTATUN_BIN" --version 2>&1 | head -n 1)"
	peer_row gt "$1" "$3" "$GOTATUN_BIN" -f --disable-drop-privileges -v error
}

run_wireguard_go_row() {
	require_tool wireguard-go
	local v deb
	v=$(wireguard-go --version 2>&1 | head -n 1)
	deb=$(dpkg-query -W -f '${Version}' wireguard-go 2>/dev/null || true)
	row_version "$v${deb:+ (deb $deb)}"
	# -f: stay in the foreground (otherwise it daemonizes and the PID is lost)
	peer_row wg "$1" "$3" env LOG_LEVEL=error wireguard-go -f
}

# uapi_ready IFNAME: a userspace WireGuard daemon is up once its control
# socket exists.
uapi_ready() {
	[[ -S "/var/run/wireguard/$1.sock" ]]
}

# peer_row TAG NS_A NS_B CMD...: starts "CMD IFNAME" in NS_A (peer a, the
# client side) and in NS_B (peer b, the target side), configures both with
# wg set, and points the measurements at peer b's overlay address.  The hub
# namespace in between only routes the encrypted UDP.
peer_row() {
	local tag=$1 ns_a=$2 ns_b=$3
	shift 3
	require_tool wg
	# Control sockets live in /var/run/wireguard/IFNAME.sock, which is shared
	# by all namespaces: the names carry the run's PID (at most 15 chars).
	local if_a="${tag}${BENCH_RUN_ID}a" if_b="${tag}${BENCH_RUN_ID}b"
	local side ns ifname pid
	for side in a b; do
		(umask 077 && wg genkey >"$ROW_DIR/$side.key")
		wg pubkey <"$ROW_DIR/$side.key" >"$ROW_DIR/$side.pub"
	done
	for side in a b; do
		if [[ $side == a ]]; then ns=$ns_a ifname=$if_a; else ns=$ns_b ifname=$if_b; fi
		[[ ! -e "/var/run/wireguard/$ifname.sock" ]] || rm -f "/var/run/wireguard/$ifname.sock"
		register_ifname "$ifname"
		start_in_ns "$ns" "$side" "$@" "$ifname"
		pid=$STARTED_PID
		row_proc "$side" "$pid"
		if ! wait_for 10 uapi_ready "$ifname"; then
			pid_alive "$pid" || row_fail "$* $ifname exited: $(tail -n 3 "$ROW_DIR/$side.log" | tr '\n' ' ')"
			row_fail "$* $ifname: no /var/run/wireguard/$ifname.sock after 10 s"
		fi
	done
	ip netns exec "$ns_a" wg set "$if_a" listen-port "$PEER_PORT" \
		private-key "$ROW_DIR/a.key" \
		peer "$(<"$ROW_DIR/b.pub")" endpoint "$BENCH_TARGET_IP:$PEER_PORT" \
		allowed-ips "$PEER_B_OVERLAY/32"
	ip netns exec "$ns_b" wg set "$if_b" listen-port "$PEER_PORT" \
		private-key "$ROW_DIR/b.key" \
		peer "$(<"$ROW_DIR/a.pub")" endpoint "$BENCH_CLIENT_IP:$PEER_PORT" \
		allowed-ips "$PEER_A_OVERLAY/32"
	ip -n "$ns_a" addr add "$PEER_A_OVERLAY/24" dev "$if_a"
	ip -n "$ns_b" addr add "$PEER_B_OVERLAY/24" dev "$if_b"
	# the userspace daemons create their TUN with MTU 1500
	ip -n "$ns_a" link set "$if_a" mtu "$PEER_MTU" up
	ip -n "$ns_b" link set "$if_b" mtu "$PEER_MTU" up
	ROW_TARGET_ADDR=$PEER_B_OVERLAY
}
