# syntax=docker/dockerfile:1
# Two images from one build: the gateway (target "gateway", the default last stage) and the device
# simulator (target "simulator"). Build: docker build -t iot-gateway .

# Pinned, so a build today and a build next month use the same toolchain: the SDK of global.json's feature band and
# the runtime it ships with. To bump: set SDK_VERSION and RUNTIME_VERSION to a released pair (the SDK's release notes
# name its runtime; `dotnet --list-runtimes` shows it locally) and global.json's "version" to the SDK's feature band
# (10.0.401 -> 10.0.400), in one commit.
ARG SDK_VERSION=10.0.401
ARG RUNTIME_VERSION=10.0.12

FROM mcr.microsoft.com/dotnet/sdk:${SDK_VERSION} AS build
# The image's architecture (BuildKit sets it): the gateway is published for it, with ReadyToRun code (its csproj).
ARG TARGETARCH=amd64
WORKDIR /src
# Restore in its own layer: it only reruns when a project file or a package version changes.
COPY global.json Directory.Build.props Directory.Packages.props ./
COPY src/IotGateway/IotGateway.csproj src/IotGateway/
COPY src/DeviceSimulator/DeviceSimulator.csproj src/DeviceSimulator/
COPY src/IotGateway.Protocol/IotGateway.Protocol.csproj src/IotGateway.Protocol/
RUN dotnet restore src/IotGateway/IotGateway.csproj --os linux -a $TARGETARCH \
 && dotnet restore src/DeviceSimulator/DeviceSimulator.csproj
COPY appsettings.json ./
COPY src/ src/
RUN dotnet publish src/IotGateway/IotGateway.csproj -c Release --os linux -a $TARGETARCH --self-contained false -o /out/gateway --no-restore \
 && dotnet publish src/DeviceSimulator/DeviceSimulator.csproj -c Release -o /out/simulator --no-restore

FROM mcr.microsoft.com/dotnet/runtime:${RUNTIME_VERSION} AS simulator
WORKDIR /app
COPY --from=build /out/simulator .
USER app
ENTRYPOINT ["dotnet", "DeviceSimulator.dll"]

FROM mcr.microsoft.com/dotnet/aspnet:${RUNTIME_VERSION} AS gateway
WORKDIR /app
COPY --from=build /out/gateway .
# data/ holds the SQLite database and the embedded broker's retained messages; mount a volume here. Owner-only (700),
# like the files the gateway creates in it (600): a new named volume takes this folder's owner and mode.
RUN install -d -m 700 -o app -g app /app/data
USER app
# The embedded broker binds loopback by default; inside a container that is the container's own loopback, which a
# published port (docker run -p 1883:1883) never reaches, so the image binds every interface. The gateway logs a
# warning at start while Mqtt__Embedded__Users__0__Username/__Password are not set: set them, or publish the port
# on the host's loopback only (-p 127.0.0.1:1883:1883).
ENV ASPNETCORE_HTTP_PORTS=8080 \
    Logging__Console__FormatterName=json \
    ConnectionStrings__Gateway="Data Source=/app/data/gateway.db" \
    Mqtt__Embedded__BindAddress=0.0.0.0 \
    Mqtt__Embedded__RetainedMessagesFile=/app/data/retained-messages.json
# 8080: HTTP API, Swagger UI, /health, /metrics. 1883: the embedded MQTT broker (when BROKER=embedded).
EXPOSE 8080 1883
VOLUME ["/app/data"]
# The runtime image has no curl: the gateway binary probes itself.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["dotnet", "IotGateway.dll", "healthcheck", "http://127.0.0.1:8080/health/live"]
ENTRYPOINT ["dotnet", "IotGateway.dll"]
