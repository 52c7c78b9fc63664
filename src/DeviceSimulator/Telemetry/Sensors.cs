namespace DeviceSimulator.Telemetry;

// A thermometer and a GPS that drift like real ones: small random steps around a home position,
// kept inside plausible bounds. Starts near the article's sample reading (23.6 °C at 48.015722, -88.625528).
internal sealed class Sensors
{
    private const double MinTemperature = -10, MaxTemperature = 45;
    private const double TemperatureStep = 0.3;
    private const double PositionStep = 0.0002;   // about 20 m per reading
    private const double MaxDistanceFromHome = 0.05;

    private readonly Random _random;
    private readonly double _homeLat, _homeLng;
    private double _temperature, _lat, _lng;

    public Sensors(Random random)
    {
        _random = random;
        _temperature = 23.6 + Spread(2);
        _homeLat = _lat = 48.015722 + Spread(MaxDistanceFromHome);
        _homeLng = _lng = -88.625528 + Spread(MaxDistanceFromHome);
    }

    public SensorReading Read()
    {
        _temperature = Math.Clamp(_temperature + Spread(TemperatureStep), MinTemperature, MaxTemperature);
        _lat = Math.Clamp(_lat + Spread(PositionStep), _homeLat - MaxDistanceFromHome, _homeLat + MaxDistanceFromHome);
        _lng = Math.Clamp(_lng + Spread(PositionStep), _homeLng - MaxDistanceFromHome, _homeLng + MaxDistanceFromHome);
        return new SensorReading(Math.Round(_temperature, 1), Math.Round(_lat, 6), Math.Round(_lng, 6));
    }

    private double Spread(double range) => (_random.NextDouble() * 2 - 1) * range;
}

internal readonly record struct SensorReading(double Temperature, double Latitude, double Longitude);
