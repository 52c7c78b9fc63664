#!/usr/bin/env bash
# Takes the README's screenshots of the web console (docs/console-*.png) from a real run: the gateway on Kestrel, a
# small fleet on its embedded broker, Debian's Chromium (apt-get install chromium) driven by the browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
CONSOLE_SCREENSHOTS=1 dotnet test tests/IotGateway.Tests --filter "FullyQualifiedName~IotGateway.Tests.WebConsole.ConsoleScreenshotTests"
ls -l docs/console-*.png
