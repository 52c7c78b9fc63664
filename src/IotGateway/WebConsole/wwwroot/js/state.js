// What outlives a page: the fleet's filters and page, and the devices selected for a bulk command.
export const fleetState = { presence: "", search: "", cursors: [null], pageIndex: 0 };
export const selection = new Set();
// The bulk page's choice of devices, kept across sending (the page is drawn again for the batch).
export const bulkState = { target: null };
