// The package ships no types: its default export is Redis Cluster's CRC16 slot of a key (hash tags honoured).
declare module "cluster-key-slot" {
  export default function calculateSlot(key: string | Buffer): number;
}
