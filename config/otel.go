package config

import "strings"

// OTelConfig is RoadRunner's otel section.
type OTelConfig struct {
	// Exporter is otlp, stdout, stderr or none (the default: no tracing).
	Exporter string `yaml:"exporter"`
	// Client is the OTLP transport: http (default, port 4318) or grpc (4317).
	Client string `yaml:"client"`
	// Endpoint is host:port of the collector; empty leaves the exporter's
	// default, which honours OTEL_EXPORTER_OTLP_ENDPOINT.
	Endpoint string `yaml:"endpoint"`
	// CustomURL is a full collector URL (scheme://host:port/path), or for
	// the http client a bare URL path such as /v1/traces.
	CustomURL string `yaml:"custom_url"`
	// Insecure disables TLS towards the collector.
	Insecure bool `yaml:"insecure"`
	// Compress gzips export requests.
	Compress bool `yaml:"compress"`
	// Headers are sent with every export request.
	Headers map[string]string `yaml:"headers"`

	ServiceName       string `yaml:"service_name"`
	ServiceVersion    string `yaml:"service_version"`
	ServiceNamespace  string `yaml:"service_namespace"`
	ServiceInstanceID string `yaml:"service_instance_id"`
	// Resource adds resource attributes. Its keys service_name,
	// service_version, service_namespace and service_instance_id (RoadRunner's
	// spelling) set the service.* attributes and win over the fields above;
	// other keys are used as attribute names as they are.
	Resource map[string]string `yaml:"resource"`
}

// Enabled reports whether spans are exported at all.
func (c *OTelConfig) Enabled() bool { return c.Exporter != "" && c.Exporter != "none" }

func (c *OTelConfig) validate(p *Problems) {
	c.Exporter = strings.ToLower(strings.TrimSpace(c.Exporter))
	c.Client = strings.ToLower(strings.TrimSpace(c.Client))
	switch c.Exporter {
	case "", "none", "otlp", "stdout", "stderr":
	default:
		p.Addf("otel.exporter", "unsupported exporter %q (want otlp, stdout, stderr, none)", c.Exporter)
	}
	switch c.Client {
	case "", "http", "grpc":
	default:
		p.Addf("otel.client", "unknown client %q (want http, grpc)", c.Client)
	}
	if c.CustomURL != "" && c.Client == "grpc" && !strings.Contains(c.CustomURL, "://") {
		p.Addf("otel.custom_url", "%q: the grpc client needs a full URL like http://collector:4317", c.CustomURL)
	}
}
