package main

import (
	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter"
	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusexporter"
	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusremotewriteexporter"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/bearertokenauthextension"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/debugexporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/batchprocessor"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"
)

const (
	coreModule    = "go.opentelemetry.io/collector"
	contribModule = "github.com/open-telemetry/opentelemetry-collector-contrib"
	coreVersion   = " v0.165.0"
	contribVer    = " v0.165.1"
)

// components lists every factory this test collector is built with.
func components() (otelcol.Factories, error) {
	var (
		factories otelcol.Factories
		err       error
	)

	// The service needs an explicit factory for its own telemetry.
	factories.Telemetry = otelconftelemetry.NewFactory()

	bearer := bearertokenauthextension.NewFactory()
	factories.Extensions, err = otelcol.MakeFactoryMap[extension.Factory](bearer)
	if err != nil {
		return otelcol.Factories{}, err
	}
	factories.ExtensionModules = map[component.Type]string{
		bearer.Type(): contribModule + "/extension/bearertokenauthextension" + contribVer,
	}

	otlp := otlpreceiver.NewFactory()
	factories.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](otlp)
	if err != nil {
		return otelcol.Factories{}, err
	}
	factories.ReceiverModules = map[component.Type]string{
		otlp.Type(): coreModule + "/receiver/otlpreceiver" + coreVersion,
	}

	debug := debugexporter.NewFactory()
	file := fileexporter.NewFactory()
	prom := prometheusexporter.NewFactory()
	prw := prometheusremotewriteexporter.NewFactory()
	factories.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](debug, file, prom, prw)
	if err != nil {
		return otelcol.Factories{}, err
	}
	factories.ExporterModules = map[component.Type]string{
		debug.Type(): coreModule + "/exporter/debugexporter" + coreVersion,
		file.Type():  contribModule + "/exporter/fileexporter" + contribVer,
		prom.Type():  contribModule + "/exporter/prometheusexporter" + contribVer,
		prw.Type():   contribModule + "/exporter/prometheusremotewriteexporter" + contribVer,
	}

	batch := batchprocessor.NewFactory()
	factories.Processors, err = otelcol.MakeFactoryMap[processor.Factory](batch)
	if err != nil {
		return otelcol.Factories{}, err
	}
	factories.ProcessorModules = map[component.Type]string{
		batch.Type(): coreModule + "/processor/batchprocessor" + coreVersion,
	}

	return factories, nil
}
