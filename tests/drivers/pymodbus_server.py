#!/usr/bin/python3
"""An independent Modbus slave for interop tests: pymodbus 3.0 (Debian 12's python3-pymodbus) serving the reference
map of the gas_shutoff_valve driver (FL-GV100, plugins/modbus_maps/include/firelink/modbus/maps/gas_shutoff_valve.hpp)
as unit 1.

  pymodbus_server.py tcp 127.0.0.1:PORT      Modbus TCP
  pymodbus_server.py rtu /dev/pts/N          Modbus RTU on a serial line (a pty)

The gas concentration reads 35.0 %LEL (raw 350), the valve reads open (1); writing 1 (close) to holding register 0
makes the valve read closed (2), as the device would.
"""
import sys

from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext, ModbusSlaveContext
from pymodbus.server import StartSerialServer, StartTcpServer
from pymodbus.transaction import ModbusRtuFramer, ModbusSocketFramer

inputs = ModbusSequentialDataBlock(0, [350, 0, 1, 0])


class ValveCommand(ModbusSequentialDataBlock):
    def setValues(self, address, values):  # noqa: N802 (pymodbus's name)
        super().setValues(address, values)
        if address == 0 and values and values[0] in (1, 2):
            inputs.setValues(2, [2 if values[0] == 1 else 1])


def main():
    mode, where = sys.argv[1], sys.argv[2]
    slave = ModbusSlaveContext(ir=inputs, hr=ValveCommand(0, [0]), co=ModbusSequentialDataBlock(0, [False] * 8),
                               di=ModbusSequentialDataBlock(0, [False] * 8), zero_mode=True)
    context = ModbusServerContext(slaves={1: slave}, single=False)
    print("starting", mode, where, flush=True)
    if mode == "tcp":
        host, port = where.rsplit(":", 1)
        StartTcpServer(context=context, address=(host, int(port)), framer=ModbusSocketFramer)
    else:
        StartSerialServer(context=context, framer=ModbusRtuFramer, port=where, baudrate=9600, timeout=0.005)


if __name__ == "__main__":
    main()
