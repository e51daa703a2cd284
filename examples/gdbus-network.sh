#!/bin/sh
# netgrant from a shell script, with gdbus (GLib): creates a persistent NAT
# network, lists the networks, reads the network's DHCP leases and deletes
# it again.
#
#   examples/gdbus-network.sh [NAME [SUBNET]]
#
# Creating a persistent network needs polkit's org.netgrant.create-nat-network
# and org.netgrant.persist; --interactive lets polkit ask for a password
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

echo "== leases of $name (mac, ipv4, hostname)"
gdbus call --system --dest $dest --object-path "$path" \
	--method org.freedesktop.DBus.Properties.Get org.netgrant.NetGrant1.Network Leases

echo "== delete $name"
gdbus call --system --interactive --dest $dest --object-path "$path" \
	--method org.netgrant.NetGrant1.Network.Delete
