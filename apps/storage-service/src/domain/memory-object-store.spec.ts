import { MemoryObjectStore } from './memory-object-store';
import { describeObjectStoreCompliance } from './object-store.compliance';

describeObjectStoreCompliance('MemoryObjectStore', async () => {
  const store = new MemoryObjectStore();
  return { store, snapshot: async () => store.snapshot(), cleanup: () => store.close() };
});
