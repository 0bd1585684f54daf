module github.com/kvnode/kvnode/jepsen

go 1.26.8

require (
	github.com/anishathalye/porcupine v1.3.1
	github.com/kvnode/kvnode v0.0.0
)

require (
	github.com/goccy/go-json v0.10.3 // indirect
	github.com/roadrunner-server/api/v4 v4.24.0 // indirect
	github.com/roadrunner-server/errors v1.4.0 // indirect
	github.com/roadrunner-server/goridge/v3 v3.8.3 // indirect
	github.com/vmihailenco/msgpack/v5 v5.4.1 // indirect
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

replace github.com/kvnode/kvnode => ../
