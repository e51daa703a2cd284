#!/bin/sh
# netgrant from a shell script, with busctl (systemd): creates a persistent
# NAT network, lists netgrant's objects, reads the network's subnets and
# DHCP leases, forwards host port 2222 to a guest's ssh and deletes it
# again.
#
#   examples/busctl-network.sh [NAME [SUBNET]]
#
# Creating a persistent network needs polkit's org.netgrant.persist, the
# forward org.netgrant.forward-port; busctl allows interactive authorization by
# default, so polkit may ask for a password through your agent.
set -eu

name=${1:-lab}
subnet=${2:-10.97.5.0/24}
dest=org.netgrant.NetGrant1
manager=/org/netgrant/NetGrant1

echo "== create $name"
busctl --system call $dest $manager org.netgrant.NetGrant1.Manager \
	CreateNATNetwork 'sa{sv}' "$name" 2 subnet s "$subnet" persistent b true

# The reply is "o \"/org/netgrant/NetGrant1/network/lab\"".
path=$(busctl --system call $dest $manager org.netgrant.NetGrant1.Manager \
	GetNetwork s "$name" | sed -n 's/^o "\(.*\)"$/\1/p')
echo "== object $path"

echo "== objects"
busctl --system --list tree $dest

echo "== subnets and leases of $name (count, then mac ipv4 hostname each)"
busctl --system get-property $dest "$path" org.netgrant.NetGrant1.Network Subnet Subnet6 Leases

# The guest at .10 of a /24 (fix its address with CreateTap's ipv4 option).
guest=${subnet%.*}.10
echo "== forward tcp port 2222 to $guest port 22"
busctl --system call $dest "$path" org.netgrant.NetGrant1.Network \
	AddPortForward 'sqsqa{sv}' tcp 2222 "$guest" 22 0
busctl --system get-property $dest "$path" org.netgrant.NetGrant1.Network PortForwards

echo "== delete $name"
busctl --system call $dest "$path" org.netgrant.NetGrant1.Network Delete
