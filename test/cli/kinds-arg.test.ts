import assert from 'node:assert/strict';
import { nameOfKind } from '../../cli/kinds-arg.js';

describe('nameOfKind', () => {
  it('takes NAME or KIND/NAME with any word of the kind', () => {
    assert.equal(nameOfKind('stripes-0', 'VirtualNode'), 'stripes-0');
    assert.equal(nameOfKind('vn/stripes-0', 'VirtualNode'), 'stripes-0');
    assert.equal(nameOfKind('virtualnodes/stripes-0', 'VirtualNode'), 'stripes-0');
    assert.equal(nameOfKind('vc/stripes', 'VirtualCluster'), 'stripes');
  });
  it('refuses another kind, an unknown kind and names that are not DNS-1123 labels', () => {
    assert.equal(nameOfKind('vc/stripes', 'VirtualNode'), undefined);
    assert.equal(nameOfKind('nope/stripes', 'VirtualNode'), undefined);
    assert.equal(nameOfKind('vn/Stripes', 'VirtualNode'), undefined);
    assert.equal(nameOfKind('vn/', 'VirtualNode'), undefined);
    assert.equal(nameOfKind('-x', 'VirtualNode'), undefined);
  });
});
