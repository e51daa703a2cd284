#!/bin/sh
# netgrant from a shell script, with gdbus (GLib): creates a persistent NAT
# network, lists the networks, reads the network's IPv6 /64 and DHCP
# leases, forwards host port 2222 to a guest's ssh and deletes it again.
#
#   examples/gdbus-network.sh [NAME [SUBNET]]
#
# Creating a persistent network needs polkit's org.netgrant.persist, the
# forward org.netgrant.forward-port; --interactive lets polkit ask for a password
# through your desktop's agent (or pkttyagent).
set -eu

name=${1:-lab}
subnet=${2:-10.97.5.0/24}
dest=org.netgrant.NetGrant1
manager=/org/netgrant/NetGrant1

echo "== create $name"
gdbus call --system --interactive --dest $dest --object-path $manager \
	--method org.netgrant.NetGrant1.Manager.CreateNATNetwork \
	"$name" "{'subnet': <'$subnet'>, 'persistent': <true>}"

# Replies are GVariant text: "(objectpath '/org/netgrant/NetGrant1/network/lab',)".
path=$(gdbus call --system --dest $dest --object-path $manager \
	--method org.netgrant.NetGrant1.Manager.GetNetwork "$name" |
	sed -n "s/^(objectpath '\(.*\)',)\$/\1/p")
echo "== object $path"

echo "== networks"
gdbus call --system --dest $dest --object-path $manager \
	--method org.freedesktop.DBus.ObjectManager.GetManagedObjects |
	grep -o "'Name': <'[^']*'>" | sed "s/'Name': <'\(.*\)'>/\1/" | sort -u

echo "== IPv6 of $name"
gdbus call --system --dest $dest --object-path "$path" \
	--method org.freedesktop.DBus.Properties.Get org.netgrant.NetGrant1.Network Subnet6

echo "== leases of $name (mac, ipv4, hostname)"
gdbus call --system --dest $dest --object-path "$path" \
	--method org.freedesktop.DBus.Properties.Get org.netgrant.NetGrant1.Network Leases

# The guest at .10 of a /24 (fix its address with CreateTap's ipv4 option).
guest=${subnet%.*}.10
echo "== forward tcp port 2222 to $guest port 22"
gdbus call --system --interactive --dest $dest --object-path "$path" \
	--method org.netgrant.NetGrant1.Network.AddPortForward "'tcp'" 2222 "'$guest'" 22 "{}"
gdbus call --system --dest $dest --object-path "$path" \
	--method org.freedesktop.DBus.Properties.Get org.netgrant.NetGrant1.Network PortForwards

echo "== delete $name"
gdbus call --system --interactive --dest $dest --object-path "$path" \
	--method org.netgrant.NetGrant1.Network.Delete
