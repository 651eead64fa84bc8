// `goulette broker`: start a broker and hand back its address and a graceful stop.
import { createLogger, type Logger } from "../log";
import { Broker } from "./broker";
import type { BrokerOptions } from "./options";

export type { BrokerOptions } from "./options";
export { brokerDefaults } from "./options";

export interface RunningBroker {
  address: string;
  broker: Broker;
  stop(): Promise<void>;
}

export async function startBroker(opts: BrokerOptions, log?: Logger): Promise<RunningBroker> {
  const broker = new Broker(opts, log ?? createLogger(opts.logLevel, { mode: "broker" }));
  await broker.start();
  return { address: broker.address, broker, stop: () => broker.stop() };
}
