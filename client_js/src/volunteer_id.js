// The volunteer id the page sends at join (`client.volunteerId`, docs/protocol.md "Join"): an
// opaque random id kept in localStorage, so a volunteer who reloads or comes back later trains on
// the same data shard of a partitioned training set. Where storage is unavailable (private mode,
// storage disabled) the id lasts for this page only.

export const STORAGE_KEY = 'webnn.volunteerId';
const VALID = /^[!-~]{1,64}$/;

/** A fresh id: `v-` and 32 hex digits from `getRandomValues` (crypto.getRandomValues). */
export function newVolunteerId(getRandomValues = (a) => globalThis.crypto.getRandomValues(a)) {
  const bytes = getRandomValues(new Uint8Array(16));
  return `v-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/**
 * The id kept in `storage` (a Storage: getItem/setItem), made and stored on first use; a stored
 * value that is not a valid id (1-64 printable ASCII characters, no spaces) is replaced.
 */
export function volunteerId(storage, getRandomValues) {
  let stored = null;
  try {
    stored = storage?.getItem(STORAGE_KEY) ?? null;
  } catch {
    stored = null;
  }
  if (stored !== null && VALID.test(stored)) return stored;
  const id = newVolunteerId(getRandomValues);
  try {
    storage?.setItem(STORAGE_KEY, id);
  } catch {
    // storage full or disabled: the id lasts for this page
  }
  return id;
}

/** `globalThis.localStorage`, or null where reading it throws (storage blocked) or it is absent. */
export function localStorageOrNull() {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null;
  }
}
