import { test } from 'node:test';
import assert from 'node:assert/strict';
import { STORAGE_KEY, newVolunteerId, volunteerId } from '../src/volunteer_id.js';

class MemoryStorage {
  constructor(entries = {}) { this.map = new Map(Object.entries(entries)); }
  getItem(key) { return this.map.has(key) ? this.map.get(key) : null; }
  setItem(key, value) { this.map.set(key, String(value)); }
}

test('a fresh id is v- and 32 hex digits of the random bytes', () => {
  const id = newVolunteerId((a) => { a.set(Array.from({ length: 16 }, (_, i) => i * 17)); return a; });
  assert.equal(id, 'v-00112233445566778899aabbccddeeff');
});

test('the id is made once and kept in storage across page loads', () => {
  const storage = new MemoryStorage();
  const first = volunteerId(storage);
  assert.match(first, /^v-[0-9a-f]{32}$/);
  assert.equal(storage.getItem(STORAGE_KEY), first);
  assert.equal(volunteerId(storage), first); // the next visit
  assert.notEqual(volunteerId(new MemoryStorage()), first); // another browser
});

test('an invalid stored value is replaced; unusable storage still gives an id', () => {
  const storage = new MemoryStorage({ [STORAGE_KEY]: 'has space' });
  const id = volunteerId(storage);
  assert.match(id, /^v-[0-9a-f]{32}$/);
  assert.equal(storage.getItem(STORAGE_KEY), id);
  const broken = { getItem() { throw new Error('denied'); }, setItem() { throw new Error('denied'); } };
  assert.match(volunteerId(broken), /^v-[0-9a-f]{32}$/);
  assert.match(volunteerId(undefined), /^v-[0-9a-f]{32}$/);
});
