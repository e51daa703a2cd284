// Package data carries the files of data/ that the programs need at run
// time, so the daemon exports exactly the introspection data it installs.
package data

import _ "embed"

// Interfaces is org.netgrant.NetGrant1.xml: every netgrant D-Bus interface.
//
//go:embed org.netgrant.NetGrant1.xml
var Interfaces []byte
