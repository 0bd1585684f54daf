// Package backupfile is the file kvnode snapshot save writes and snapshot
// restore and inspect read: the cluster's snapshot stream (package fsm's
// format) wrapped with what took it and a digest of the whole file.
//
//	"KVNBKUP1"            magic with the format version
//	length uint32 BE      of the JSON metadata that follows
//	metadata              Meta as JSON
//	stream                the cluster's snapshot stream (fsm format, with
//	                      its own CRC-64), metadata.size bytes
//	SHA-256               32 bytes over everything before it
//
// The SHA-256 catches any damage to the file; the stream's CRC-64 is
// checked again here (fsm.VerifySnapshot) and by the node that restores
// it. Create writes under a new temporary name beside the target and
// renames it into place on Commit, so neither an interrupted save nor a
// symlink planted at a predictable name can leave or clobber a file. Open
// verifies the whole file before anything is sent anywhere.
package backupfile
