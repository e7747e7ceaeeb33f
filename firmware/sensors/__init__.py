# Sensor drivers, one module per chip. Each has a class whose read() returns {quantity name: value}.
